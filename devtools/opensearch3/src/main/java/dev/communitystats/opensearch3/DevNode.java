package dev.communitystats.opensearch3;

import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.core.LoggerContext;
import org.apache.logging.log4j.core.config.Configurator;
import org.opensearch.Version;
import org.opensearch.analysis.common.CommonAnalysisModulePlugin;
import org.opensearch.common.logging.LogConfigurator;
import org.opensearch.common.settings.Settings;
import org.opensearch.env.Environment;
import org.opensearch.geo.GeoModulePlugin;
import org.opensearch.index.mapper.MapperExtrasModulePlugin;
import org.opensearch.index.reindex.ReindexModulePlugin;
import org.opensearch.ingest.common.IngestCommonModulePlugin;
import org.opensearch.join.ParentJoinModulePlugin;
import org.opensearch.node.InternalSettingsPreparer;
import org.opensearch.node.Node;
import org.opensearch.painless.PainlessModulePlugin;
import org.opensearch.percolator.PercolatorModulePlugin;
import org.opensearch.plugins.Plugin;
import org.opensearch.plugins.PluginInfo;
import org.opensearch.transport.Netty4ModulePlugin;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * The OpenSearch 3.x twin of {@code devtools/opensearch}'s launcher: a real OpenSearch server
 * node whose modules are loaded from the classpath (there is no distribution tarball here, only
 * Maven jars).
 *
 * <p>The difference from the 2.19 launcher is the {@link Node} constructor: in 3.x the protected
 * constructor takes {@link PluginInfo}s instead of plugin classes. That lets a classpath plugin
 * name the plugins it extends, so {@code analysis-common} and {@code ingest-common} are declared
 * as extending {@code lang-painless}, as their packaged descriptors do, and their painless
 * extensions are wired. 3.x has no Java security manager at all; the stock distribution replaces
 * it with a Java agent ({@code opensearch-agent}), which this launcher does not load, just as it
 * leaves out the jar-hell check, native calls (mlockall, seccomp) and the bootstrap checks.
 *
 * <p>System properties: {@code devnode.home} (required: the node's home, holding config/),
 * {@code devnode.pidfile} (optional: written with this JVM's pid first thing).
 */
public final class DevNode extends Node {

    /** One module loaded from the classpath: its distribution name, its class, what it extends. */
    record Module(String name, Class<? extends Plugin> plugin, List<String> extended) {
        PluginInfo info() {
            return new PluginInfo(name, "module " + name + " (classpath)", Version.CURRENT.toString(),
                Version.CURRENT, Integer.toString(Runtime.version().feature()), plugin.getName(),
                extended, false);
        }
    }

    static final List<Module> MODULES = List.of(
        new Module("transport-netty4", Netty4ModulePlugin.class, List.of()),
        new Module("lang-painless", PainlessModulePlugin.class, List.of()),
        new Module("analysis-common", CommonAnalysisModulePlugin.class, List.of("lang-painless")),
        new Module("reindex", ReindexModulePlugin.class, List.of()),
        new Module("mapper-extras", MapperExtrasModulePlugin.class, List.of()),
        new Module("ingest-common", IngestCommonModulePlugin.class, List.of("lang-painless")),
        new Module("geo", GeoModulePlugin.class, List.of()),
        new Module("parent-join", ParentJoinModulePlugin.class, List.of()),
        new Module("percolator", PercolatorModulePlugin.class, List.of())
    );

    private DevNode(Environment environment) {
        super(environment, MODULES.stream().map(Module::info).toList(), true);
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
