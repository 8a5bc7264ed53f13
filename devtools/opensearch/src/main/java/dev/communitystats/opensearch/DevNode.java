package dev.communitystats.opensearch;

import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.core.LoggerContext;
import org.apache.logging.log4j.core.config.Configurator;
import org.opensearch.analysis.common.CommonAnalysisPlugin;
import org.opensearch.common.logging.LogConfigurator;
import org.opensearch.common.settings.Settings;
import org.opensearch.env.Environment;
import org.opensearch.geo.GeoModulePlugin;
import org.opensearch.index.mapper.MapperExtrasPlugin;
import org.opensearch.ingest.common.IngestCommonPlugin;
import org.opensearch.join.ParentJoinPlugin;
import org.opensearch.index.reindex.ReindexPlugin;
import org.opensearch.node.InternalSettingsPreparer;
import org.opensearch.node.Node;
import org.opensearch.painless.PainlessPlugin;
import org.opensearch.percolator.PercolatorPlugin;
import org.opensearch.plugins.Plugin;
import org.opensearch.transport.Netty4Plugin;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * A real OpenSearch server node whose modules are loaded from the classpath instead of from
 * {@code $OPENSEARCH_HOME/modules} (there is no distribution tarball here, only Maven jars).
 *
 * <p>Everything else is the stock server: settings come from {@code <home>/config/opensearch.yml},
 * logging from {@code <home>/config/log4j2.properties}, HTTP is the netty4 transport.
 * What the stock {@code Bootstrap} adds and this launcher leaves out: the Java security manager,
 * the jar-hell check, native calls (mlockall, seccomp) and the production bootstrap checks.
 *
 * <p>System properties: {@code devnode.home} (required: the node's home, holding config/),
 * {@code devnode.pidfile} (optional: written with this JVM's pid first thing).
 */
public final class DevNode extends Node {

    static final List<Class<? extends Plugin>> MODULES = List.of(
        Netty4Plugin.class,
        CommonAnalysisPlugin.class,
        PainlessPlugin.class,
        ReindexPlugin.class,
        MapperExtrasPlugin.class,
        IngestCommonPlugin.class,
        GeoModulePlugin.class,
        ParentJoinPlugin.class,
        PercolatorPlugin.class
    );

    private DevNode(Environment environment) {
        super(environment, MODULES, true);
    }

    public static void main(String[] args) throws Exception {
        String homeProp = System.getProperty("devnode.home");
        if (homeProp == null || homeProp.isEmpty()) {
            System.err.println("DevNode: -Ddevnode.home=<node home with config/opensearch.yml> is required");
            System.exit(2);
        }
        String pidFile = System.getProperty("devnode.pidfile");
        if (pidFile != null && !pidFile.isEmpty()) {
            Files.write(Paths.get(pidFile),
                (ProcessHandle.current().pid() + "\n").getBytes(StandardCharsets.US_ASCII));
        }
        Path home = Paths.get(homeProp).toAbsolutePath().normalize();
        Settings input = Settings.builder().put(Environment.PATH_HOME_SETTING.getKey(), home.toString()).build();
        Environment env = InternalSettingsPreparer.prepareEnvironment(
            input, Collections.emptyMap(), home.resolve("config"), () -> "dev-node");

        LogConfigurator.setNodeName(Node.NODE_NAME_SETTING.get(env.settings()));
        LogConfigurator.configure(env);

        final DevNode node;
        try {
            node = new DevNode(env);
        } catch (Throwable t) {
            System.err.println("DevNode: could not create the node: " + t);
            t.printStackTrace();
            System.exit(1);
            return;
        }

        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                node.close();
                node.awaitClose(15, TimeUnit.SECONDS);
            } catch (Exception e) {
                e.printStackTrace();
            } finally {
                Configurator.shutdown((LoggerContext) LogManager.getContext(false));
                stopped.countDown();
            }
        }, "devnode-shutdown"));

        try {
            node.start();
        } catch (Throwable t) {
            System.err.println("DevNode: could not start the node: " + t);
            t.printStackTrace();
            // halt: the shutdown hook would try to close a half-started node
            Runtime.getRuntime().halt(1);
        }

        System.out.println("DevNode: started " + Node.NODE_NAME_SETTING.get(env.settings()));
        stopped.await(); // the main thread keeps the JVM alive until SIGTERM/SIGINT
    }
}
