//! The embedding entry points of MNG-R08: [`Server::from_yaml_file`] and
//! [`Server::from_config`] only validate (every type's own `validate` included, as
//! `--check` does); [`Server::start`] builds and starts it. A server started this way keeps
//! its config and registry, so [`RunningServer::reload`] can apply a new config (MNG-R31).

use std::path::Path;
use std::sync::Arc;

use crate::config::{ConfigError, ServerConfig};
use crate::event::Event;
use crate::registry::Registry;
use crate::server::{RunningServer, StartError};

/// A validated, not yet started server.
pub struct Server<E: Event> {
    cfg: ServerConfig,
    reg: Arc<Registry<E>>,
}

impl<E: Event> Server<E> {
    /// Reads, parses and validates a YAML file against `reg`.
    pub fn from_yaml_file(path: impl AsRef<Path>, reg: Registry<E>) -> Result<Self, ConfigError> {
        Self::from_config(crate::config::from_yaml_file(path)?, reg)
    }

    /// Validates `cfg` (from YAML or [`ServerConfig::builder`]) against `reg`.
    pub fn from_config(cfg: ServerConfig, reg: Registry<E>) -> Result<Self, ConfigError> {
        crate::plan::check(&cfg, &reg)?;
        Ok(Server {
            cfg,
            reg: Arc::new(reg),
        })
    }

    /// The validated config.
    pub fn config(&self) -> &ServerConfig {
        &self.cfg
    }

    /// Starts it (MNG-R19).
    pub fn start(self) -> Result<RunningServer<E>, StartError> {
        let spec = crate::plan::to_spec(&self.cfg, &self.reg).map_err(|e| StartError {
            component: "config".into(),
            error: e.to_string(),
        })?;
        let srv = RunningServer::start(spec)?;
        srv.set_reload_context(self.cfg, self.reg);
        Ok(srv)
    }
}
