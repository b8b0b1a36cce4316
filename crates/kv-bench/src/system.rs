//! The system under test: ours (`kv-server`) or etcd, as the command line names it.

/// The system under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum System {
    /// Our store: `kv-server` processes, reached with `kv-client`.
    #[value(alias = "ours")]
    Kv,
    /// etcd, reached with `etcd-client`.
    Etcd,
}

impl System {
    /// The name used in reports and folder names.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            System::Kv => "kv",
            System::Etcd => "etcd",
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::ValueEnum;

    use super::*;

    #[test]
    fn command_line_names_match_report_names() {
        for system in System::value_variants() {
            let parsed = System::from_str(system.name(), false).unwrap();
            assert_eq!(parsed, *system);
        }
        assert_eq!(System::from_str("ours", false).unwrap(), System::Kv);
        assert!(System::from_str("redis", false).is_err());
    }
}
