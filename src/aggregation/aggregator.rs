//! The aggregators: one closed set, and everything that differs between them (name,
//! written index, what `read` calls them, date field, template, which delta feeds which
//! snapshot) in one place.

use serde_json::Value;

use crate::error::{Error, Result};

/// One of the four aggregators, in run order (each snapshot after its delta).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Aggregator {
    /// Daily usage per community (`community-usage-delta-agg`).
    UsageDelta,
    /// Daily records added and removed ("added" basis).
    RecordsDelta,
    /// Cumulative records, from the records deltas.
    RecordsSnapshot,
    /// Cumulative usage, from the usage deltas.
    UsageSnapshot,
}

impl Aggregator {
    /// Every aggregator, in run order.
    pub const ALL: [Aggregator; 4] = [
        Aggregator::UsageDelta,
        Aggregator::RecordsDelta,
        Aggregator::RecordsSnapshot,
        Aggregator::UsageSnapshot,
    ];

    /// True if every community is done in one pass over the sources (the usage delta);
    /// else community by community.
    pub fn shares_pass(self) -> bool {
        matches!(self, Aggregator::UsageDelta)
    }

    /// The name operators and bookmarks use (the reference's names).
    pub fn name(self) -> &'static str {
        match self {
            Aggregator::UsageDelta => "community-usage-delta-agg",
            Aggregator::RecordsDelta => "community-records-delta-added-agg",
            Aggregator::RecordsSnapshot => "community-records-snapshot-added-agg",
            Aggregator::UsageSnapshot => "community-usage-snapshot-agg",
        }
    }

    /// The index it writes (read alias, without prefix; yearly indices add `-YYYY`).
    pub fn index(self) -> &'static str {
        match self {
            Aggregator::UsageDelta => "stats-community-usage-delta",
            Aggregator::RecordsDelta => "stats-community-records-delta-added",
            Aggregator::RecordsSnapshot => "stats-community-records-snapshot-added",
            Aggregator::UsageSnapshot => "stats-community-usage-snapshot",
        }
    }

    /// Its index template's name (without prefix).
    pub fn template_name(self) -> &'static str {
        match self {
            Aggregator::UsageDelta => "stats-community-usage-delta-v1.0.0",
            Aggregator::RecordsDelta => "stats-community-records-delta-added-v1.0.0",
            Aggregator::RecordsSnapshot => "stats-community-records-snapshot-added-v1.0.0",
            Aggregator::UsageSnapshot => "stats-community-usage-snapshot-v1.0.0",
        }
    }

    /// Its index template, built from the subcount tables.
    pub fn template(self) -> Value {
        match self {
            Aggregator::UsageDelta => super::subcounts::usage_delta_template(),
            Aggregator::RecordsDelta => super::records::records_delta_template(),
            Aggregator::RecordsSnapshot => super::records::records_snapshot_template(),
            Aggregator::UsageSnapshot => super::subcounts::usage_snapshot_template(),
        }
    }

    /// What `read --query-type` calls its documents, and their key in `read`'s output.
    pub fn read_kind(self) -> (&'static str, &'static str) {
        match self {
            Aggregator::UsageDelta => ("usage-delta", "usage_deltas"),
            Aggregator::UsageSnapshot => ("usage-snapshot", "usage_snapshots"),
            Aggregator::RecordsDelta => ("records-delta-added", "record_deltas_added"),
            Aggregator::RecordsSnapshot => ("records-snapshot-added", "record_snapshots_added"),
        }
    }

    /// The day field of its documents.
    pub fn date_field(self) -> &'static str {
        if self.is_delta() {
            "period_start"
        } else {
            "snapshot_date"
        }
    }

    /// A delta aggregator (reads the sources), not a snapshot (reads the deltas).
    pub fn is_delta(self) -> bool {
        matches!(self, Aggregator::UsageDelta | Aggregator::RecordsDelta)
    }

    /// The snapshot aggregator of the same family (itself for a snapshot).
    pub fn snapshot(self) -> Aggregator {
        match self {
            Aggregator::UsageDelta | Aggregator::UsageSnapshot => Aggregator::UsageSnapshot,
            Aggregator::RecordsDelta | Aggregator::RecordsSnapshot => Aggregator::RecordsSnapshot,
        }
    }

    /// The delta aggregator of the same family (itself for a delta).
    pub fn delta(self) -> Aggregator {
        match self {
            Aggregator::UsageDelta | Aggregator::UsageSnapshot => Aggregator::UsageDelta,
            Aggregator::RecordsDelta | Aggregator::RecordsSnapshot => Aggregator::RecordsDelta,
        }
    }

    /// Why there is nothing to aggregate for a community (or `global`).
    pub fn nothing_to_do(self, global: bool) -> &'static str {
        match self {
            Aggregator::UsageDelta => "no usage events",
            Aggregator::RecordsDelta if global => "no records",
            Aggregator::RecordsDelta => "no community events (run generate-community-events)",
            Aggregator::UsageSnapshot => "no usage deltas",
            Aggregator::RecordsSnapshot => "no records deltas",
        }
    }

    /// The aggregator named `name`.
    pub fn parse(name: &str) -> Result<Aggregator> {
        Aggregator::ALL
            .into_iter()
            .find(|a| a.name() == name)
            .ok_or_else(|| {
                let known: Vec<&str> = Aggregator::ALL.iter().map(|a| a.name()).collect();
                Error::invalid(format!(
                    "unknown aggregation type {name:?} (known: {})",
                    known.join(", ")
                ))
            })
    }

    /// The aggregators named (every one when none is), each once, in run order.
    pub fn parse_list(names: &[String]) -> Result<Vec<Aggregator>> {
        let mut out = names
            .iter()
            .map(|n| Aggregator::parse(n))
            .collect::<Result<Vec<_>>>()?;
        if out.is_empty() {
            out = Aggregator::ALL.to_vec();
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// The aggregator whose documents `read` calls `kind`.
    pub fn parse_read_kind(kind: &str) -> Result<Aggregator> {
        Aggregator::ALL
            .into_iter()
            .find(|a| a.read_kind().0 == kind)
            .ok_or_else(|| {
                let known: Vec<&str> = Aggregator::ALL.iter().map(|a| a.read_kind().0).collect();
                Error::invalid(format!(
                    "unknown query type {kind:?} (known: {})",
                    known.join(", ")
                ))
            })
    }
}

impl std::fmt::Display for Aggregator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_lists_keep_run_order() {
        for a in Aggregator::ALL {
            assert_eq!(Aggregator::parse(a.name()).unwrap(), a);
            assert_eq!(Aggregator::parse_read_kind(a.read_kind().0).unwrap(), a);
            assert_eq!(a.delta().snapshot(), a.snapshot());
        }
        let given = vec![
            "community-usage-snapshot-agg".to_string(),
            "community-usage-delta-agg".into(),
            "community-usage-delta-agg".into(),
        ];
        assert_eq!(
            Aggregator::parse_list(&given).unwrap(),
            vec![Aggregator::UsageDelta, Aggregator::UsageSnapshot]
        );
        assert_eq!(
            Aggregator::parse_list(&[]).unwrap(),
            Aggregator::ALL.to_vec()
        );
        let err = Aggregator::parse("nope").unwrap_err().to_string();
        assert!(err.contains("community-records-delta-added-agg"), "{err}");
    }
}
