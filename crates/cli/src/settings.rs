//! The producer configuration both subcommands build, in the documented order: Kafka's defaults,
//! then `--producer.config`, then the `KEY=VALUE` properties, then `-b`.

use std::path::Path;

use kafka_producer::{read_properties_file, ProducerConfig};

/// The configuration before subcommand-specific overrides (and before `validate`).
pub(crate) fn producer_config(
    bootstrap_server: &str,
    file: Option<&Path>,
    properties: &[(String, String)],
) -> Result<ProducerConfig, kafka_producer::Error> {
    let mut config = ProducerConfig::new(bootstrap_server);
    if let Some(path) = file {
        for (key, value) in read_properties_file(path)? {
            config.set(&key, &value)?;
        }
    }
    for (key, value) in properties {
        config.set(key, value)?;
    }
    config.set("bootstrap.servers", bootstrap_server)?;
    Ok(config)
}
