//! The closed, typed registry (MNG-R03): kebab-case type names mapped to factories. A YAML
//! config can only name registered types; embedders register their own from Rust.
//!
//! Each factory has two phases: `validate` reads the type's `config` into its own
//! `deny_unknown_fields` struct with no side effects (what `--check` runs); `build` creates
//! the instance (processors are built on their group thread).
//!
//! [`Registry::new`] holds the `memory` feed, the six sinks (`redis-stream` with the `redis`
//! feature) and `log`; [`Registry::with_json_builtins`] adds the JSON feeds (`file`,
//! `stdin`, `timer`, `tcp`, `http`, `redis-stream`) and processors (`filter`, `map`,
//! `count-by-key`, `route-by-field`). Services have no built-in types: embedders register
//! theirs with [`Registry::register_service`].

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::builtins::{
    count_by_key::CountByKey, filter::Filter, log::Log, map::MapProc, route::Route,
};
use crate::config::{KnownTypes, TypeKind};
use crate::event::{Event, JsonEvent};
use crate::processor::{ConfigMap, Processor};

/// Validates a type's `config` without side effects.
pub type Validate = Arc<dyn Fn(&ConfigMap) -> Result<(), String> + Send + Sync>;
/// Builds a processor from its `config`.
pub type BuildProcessor<E> =
    Arc<dyn Fn(&ConfigMap) -> Result<Box<dyn Processor<E>>, String> + Send + Sync>;

/// A registration error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// The name is already registered for that kind.
    #[error("{kind:?} type {name:?} is already registered")]
    Duplicate {
        /// Kind.
        kind: TypeKind,
        /// Name.
        name: String,
    },
}

/// One registered processor type.
pub struct ProcessorType<E> {
    /// Config check.
    pub validate: Validate,
    /// Constructor.
    pub build: BuildProcessor<E>,
    /// Crate version it comes from.
    pub version: &'static str,
}

/// One registered feed type.
pub struct FeedType<E: Event> {
    /// Config check.
    pub validate: Validate,
    /// Connects an instance; None for `memory`, whose publisher the embedder takes.
    pub build: Option<crate::feed::BuildFeed<E>>,
    /// Where it runs (`agentName` is refused on I/O-runtime types).
    pub runs_on: crate::feed::RunsOn,
    /// Whether several threads publish on it.
    pub multi_producer: bool,
    /// Whether it acknowledges upstream once groups processed an event (groups then keep
    /// watermarks for it, MNG-R32).
    pub acknowledges: bool,
    /// Crate version it comes from.
    pub version: &'static str,
    /// The cargo feature it needs, if any.
    pub feature: Option<&'static str>,
}

/// One registered sink type.
pub struct SinkType<E: Event> {
    /// Config check.
    pub validate: Validate,
    /// Constructs an instance; None for the inline `memory` sink.
    pub build: Option<crate::sink_agent::BuildSink<E>>,
    /// Crate version it comes from.
    pub version: &'static str,
    /// The cargo feature it needs, if any.
    pub feature: Option<&'static str>,
}

/// Builds a service from its `config`.
pub type BuildService =
    Arc<dyn Fn(&ConfigMap) -> Result<crate::service::ServiceHandle, String> + Send + Sync>;

/// One registered service type.
pub struct ServiceType {
    /// Config check.
    pub validate: Validate,
    /// Constructor.
    pub build: BuildService,
    /// Crate version it comes from.
    pub version: &'static str,
}

/// Names, kinds and factories.
pub struct Registry<E: Event> {
    services: BTreeMap<String, ServiceType>,
    processors: BTreeMap<String, ProcessorType<E>>,
    feeds: BTreeMap<String, FeedType<E>>,
    sinks: BTreeMap<String, SinkType<E>>,
}

impl<E: Event> Default for Registry<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E: Event> Registry<E> {
    /// The `memory` feed and sink and the `log` processor.
    pub fn new() -> Self {
        let mut r = Registry {
            services: BTreeMap::new(),
            processors: BTreeMap::new(),
            feeds: BTreeMap::new(),
            sinks: BTreeMap::new(),
        };
        r.feeds.insert(
            "memory".into(),
            FeedType {
                validate: Arc::new(|c| crate::plan::memory_producers(c).map(|_| ())),
                build: None,
                runs_on: crate::feed::RunsOn::Caller,
                multi_producer: false,
                acknowledges: false,
                version: env!("CARGO_PKG_VERSION"),
                feature: None,
            },
        );
        r.sinks.insert(
            "memory".into(),
            SinkType {
                validate: Arc::new(|c| crate::plan::memory_capacity(c).map(|_| ())),
                build: None,
                version: env!("CARGO_PKG_VERSION"),
                feature: None,
            },
        );
        let sink = |validate: fn(&ConfigMap) -> Result<(), String>,
                    build: crate::sink_agent::BuildSink<E>,
                    feature: Option<&'static str>| SinkType {
            validate: Arc::new(validate),
            build: Some(build),
            version: env!("CARGO_PKG_VERSION"),
            feature,
        };
        let builtin_sinks: Vec<(&str, SinkType<E>)> = vec![
            (
                "stdout",
                sink(
                    crate::sinks::stdout::validate,
                    Arc::new(crate::sinks::stdout::build::<E>),
                    None,
                ),
            ),
            (
                "file",
                sink(
                    crate::sinks::file::validate,
                    Arc::new(crate::sinks::file::build::<E>),
                    None,
                ),
            ),
            (
                "tcp",
                sink(
                    crate::sinks::tcp::validate,
                    Arc::new(crate::sinks::tcp::build::<E>),
                    None,
                ),
            ),
            (
                "http",
                sink(
                    crate::sinks::http::validate,
                    Arc::new(crate::sinks::http::build::<E>),
                    None,
                ),
            ),
            #[cfg(feature = "redis")]
            (
                "redis-stream",
                sink(
                    crate::sinks::redis_stream::validate,
                    Arc::new(crate::sinks::redis_stream::build::<E>),
                    Some("redis"),
                ),
            ),
        ];
        for (n, t) in builtin_sinks {
            r.register_sink(n, t).expect("built-in names are distinct");
        }
        r.register_processor(
            "log",
            |c| Log::new(c).map(|_| ()),
            |c| Ok(Box::new(Log::new(c)?)),
        )
        .expect("fresh registry");
        r
    }

    /// Registers a processor type.
    pub fn register_processor(
        &mut self,
        name: &str,
        validate: impl Fn(&ConfigMap) -> Result<(), String> + Send + Sync + 'static,
        build: impl Fn(&ConfigMap) -> Result<Box<dyn Processor<E>>, String> + Send + Sync + 'static,
    ) -> Result<&mut Self, RegistryError> {
        if self.processors.contains_key(name) {
            return Err(RegistryError::Duplicate {
                kind: TypeKind::Processor,
                name: name.into(),
            });
        }
        self.processors.insert(
            name.into(),
            ProcessorType {
                validate: Arc::new(validate),
                build: Arc::new(build),
                version: env!("CARGO_PKG_VERSION"),
            },
        );
        Ok(self)
    }

    /// A processor type.
    pub fn processor(&self, name: &str) -> Option<&ProcessorType<E>> {
        self.processors.get(name)
    }

    /// Registers a service type (the binary has none built in; embedders add theirs).
    pub fn register_service<T: crate::service::Service>(
        &mut self,
        name: &str,
        validate: impl Fn(&ConfigMap) -> Result<(), String> + Send + Sync + 'static,
        build: impl Fn(&ConfigMap) -> Result<T, String> + Send + Sync + 'static,
    ) -> Result<&mut Self, RegistryError> {
        if self.services.contains_key(name) {
            return Err(RegistryError::Duplicate {
                kind: TypeKind::Service,
                name: name.into(),
            });
        }
        self.services.insert(
            name.into(),
            ServiceType {
                validate: Arc::new(validate),
                build: Arc::new(move |c| build(c).map(crate::service::ServiceHandle::new)),
                version: env!("CARGO_PKG_VERSION"),
            },
        );
        Ok(self)
    }

    /// A service type.
    pub fn service(&self, name: &str) -> Option<&ServiceType> {
        self.services.get(name)
    }

    /// Registers a feed type.
    pub fn register_feed(
        &mut self,
        name: &str,
        t: FeedType<E>,
    ) -> Result<&mut Self, RegistryError> {
        if self.feeds.contains_key(name) {
            return Err(RegistryError::Duplicate {
                kind: TypeKind::Feed,
                name: name.into(),
            });
        }
        self.feeds.insert(name.into(), t);
        Ok(self)
    }

    /// Registers a sink type.
    pub fn register_sink(
        &mut self,
        name: &str,
        t: SinkType<E>,
    ) -> Result<&mut Self, RegistryError> {
        if self.sinks.contains_key(name) {
            return Err(RegistryError::Duplicate {
                kind: TypeKind::Sink,
                name: name.into(),
            });
        }
        self.sinks.insert(name.into(), t);
        Ok(self)
    }

    /// A feed type.
    pub fn feed(&self, name: &str) -> Option<&FeedType<E>> {
        self.feeds.get(name)
    }

    /// A sink type.
    pub fn sink(&self, name: &str) -> Option<&SinkType<E>> {
        self.sinks.get(name)
    }

    /// What config validation may name.
    pub fn known_types(&self) -> KnownTypes {
        let mut k = KnownTypes::new();
        for n in self.feeds.keys() {
            k.insert(TypeKind::Feed, n);
        }
        for n in self.sinks.keys() {
            k.insert(TypeKind::Sink, n);
        }
        for n in self.processors.keys() {
            k.insert(TypeKind::Processor, n);
        }
        for n in self.services.keys() {
            k.insert(TypeKind::Service, n);
        }
        k
    }

    /// `(kind, name, version, feature)` of every type, for `--list-types`.
    pub fn list(&self) -> Vec<(&'static str, String, &'static str, Option<&'static str>)> {
        let mut v = Vec::new();
        v.extend(
            self.feeds
                .iter()
                .map(|(n, t)| ("feed", n.clone(), t.version, t.feature)),
        );
        v.extend(
            self.sinks
                .iter()
                .map(|(n, t)| ("sink", n.clone(), t.version, t.feature)),
        );
        v.extend(
            self.processors
                .iter()
                .map(|(n, p)| ("processor", n.clone(), p.version, None)),
        );
        v.extend(
            self.services
                .iter()
                .map(|(n, t)| ("service", n.clone(), t.version, None)),
        );
        v
    }
}

impl<E: JsonEvent> Registry<E> {
    /// Adds the JSON built-ins: the `file`, `stdin`, `timer`, `tcp` and `http` feeds (and
    /// `redis-stream` with its feature) and the `filter`, `map`, `count-by-key` and
    /// `route-by-field` processors.
    pub fn with_json_builtins(mut self) -> Self {
        use crate::feeds;
        let feed = |validate: fn(&ConfigMap) -> Result<(), String>,
                    build: crate::feed::BuildFeed<E>,
                    runs_on: crate::feed::RunsOn,
                    multi_producer: bool,
                    feature: Option<&'static str>| FeedType {
            validate: Arc::new(validate),
            build: Some(build),
            runs_on,
            multi_producer,
            acknowledges: false,
            version: env!("CARGO_PKG_VERSION"),
            feature,
        };
        let builtin_feeds: Vec<(&str, FeedType<E>)> = vec![
            (
                "file",
                feed(
                    feeds::file::validate,
                    Arc::new(feeds::file::build::<E>),
                    feeds::file::RUNS_ON,
                    feeds::file::MULTI_PRODUCER,
                    None,
                ),
            ),
            (
                "stdin",
                feed(
                    feeds::stdin::validate,
                    Arc::new(feeds::stdin::build::<E>),
                    feeds::stdin::RUNS_ON,
                    feeds::stdin::MULTI_PRODUCER,
                    None,
                ),
            ),
            (
                "timer",
                feed(
                    feeds::timer::validate,
                    Arc::new(feeds::timer::build::<E>),
                    feeds::timer::RUNS_ON,
                    feeds::timer::MULTI_PRODUCER,
                    None,
                ),
            ),
            (
                "tcp",
                feed(
                    feeds::tcp::validate,
                    Arc::new(feeds::tcp::build::<E>),
                    feeds::tcp::RUNS_ON,
                    feeds::tcp::MULTI_PRODUCER,
                    None,
                ),
            ),
            (
                "http",
                feed(
                    feeds::http::validate,
                    Arc::new(feeds::http::build::<E>),
                    feeds::http::RUNS_ON,
                    feeds::http::MULTI_PRODUCER,
                    None,
                ),
            ),
        ];
        for (n, t) in builtin_feeds {
            self.register_feed(n, t)
                .expect("built-in names are distinct");
        }
        #[cfg(feature = "redis")]
        self.register_feed(
            "redis-stream",
            FeedType {
                acknowledges: true,
                ..feed(
                    feeds::redis_stream::validate,
                    Arc::new(feeds::redis_stream::build::<E>),
                    feeds::redis_stream::RUNS_ON,
                    feeds::redis_stream::MULTI_PRODUCER,
                    Some("redis"),
                )
            },
        )
        .expect("built-in names are distinct");
        self.register_processor(
            "filter",
            |c| Filter::<E>::new(c).map(|_| ()),
            |c| Ok(Box::new(Filter::<E>::new(c)?)),
        )
        .and_then(|r| {
            r.register_processor(
                "map",
                |c| MapProc::<E>::new(c).map(|_| ()),
                |c| Ok(Box::new(MapProc::<E>::new(c)?)),
            )
        })
        .and_then(|r| {
            r.register_processor(
                "count-by-key",
                |c| CountByKey::<E>::new(c).map(|_| ()),
                |c| Ok(Box::new(CountByKey::<E>::new(c)?)),
            )
        })
        .and_then(|r| {
            r.register_processor(
                "route-by-field",
                |c| Route::<E>::new(c).map(|_| ()),
                |c| Ok(Box::new(Route::<E>::new(c)?)),
            )
        })
        .expect("built-in names are distinct");
        self
    }
}

impl Registry<crate::event::Record> {
    /// Every type this build has, for the binary's `Record` events.
    pub fn standard() -> Self {
        Registry::new().with_json_builtins()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Record;

    #[test]
    fn standard_holds_the_implemented_builtins_and_duplicates_are_refused() {
        let mut r = Registry::<Record>::standard();
        let k = r.known_types();
        for p in ["log", "filter", "map", "count-by-key", "route-by-field"] {
            assert!(k.contains(TypeKind::Processor, p), "{p}");
        }
        assert!(k.contains(TypeKind::Feed, "memory"));
        assert!(k.contains(TypeKind::Sink, "memory"));
        assert!(!k.contains(TypeKind::Feed, "kafka"));
        let dup = r
            .register_processor("log", |_| Ok(()), |c| Ok(Box::new(Log::new(c)?)))
            .err();
        assert_eq!(
            dup,
            Some(RegistryError::Duplicate {
                kind: TypeKind::Processor,
                name: "log".into()
            })
        );
    }
}
