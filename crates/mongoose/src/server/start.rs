//! Startup (MNG-R19), fail-fast: admin, sinks, services, groups (build, subscribe, init,
//! start), queues, feeds (connect), then `start_complete`; a critical failure stops what
//! started, in reverse, and names the component.

use super::*;

impl<E: Event> RunningServer<E> {
    pub(super) fn start_inner(spec: ServerSpec<E>) -> Result<Self, StartError> {
        let t0 = Instant::now();
        let phase = Arc::new(AtomicU8::new(PHASE_STARTING));
        let server: &'static str = leak(&spec.name);
        let feed_names: Arc<Vec<&'static str>> =
            Arc::new(spec.feeds.iter().map(|f| leak(&f.name)).collect());
        let broadcast = Arc::new(spec.feeds.iter().map(|f| f.broadcast).collect::<Vec<_>>());
        let wrap_named = Arc::new(spec.feeds.iter().map(|f| f.wrap_named).collect::<Vec<_>>());
        let quarantine = Arc::new(Quarantine::new(spec.quarantine_capacity));
        let health = crate::health::Health::new(spec.health);
        let metrics = ron_metrics::Metrics::builder()
            .service("mongoose")
            .instance(server)
            .build()
            .map_err(|e| StartError {
                component: "metrics".into(),
                error: e.to_string(),
            })?;
        // The I/O runtime exists only when something needs it (MNG-R18).
        let needs_io =
            spec.admin.address.is_some() || !spec.sinks.is_empty() || !spec.feed_sources.is_empty();
        let runtime = if needs_io {
            Some(
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(usize::from(spec.io_threads.max(1)))
                    .thread_name("mg-io")
                    .enable_all()
                    .build()
                    .map_err(|e| StartError {
                        component: "runtime".into(),
                        error: e.to_string(),
                    })?,
            )
        } else {
            None
        };
        let io = runtime.as_ref().map(|r| r.handle().clone());
        let partial = Partial {
            admin_stop: CancellationToken::new(),
            feeds_stop: CancellationToken::new(),
            runtime,
        };
        macro_rules! fail {
            ($partial:expr, $e:expr) => {{
                $partial.abort();
                return Err($e);
            }};
        }
        // Step 2: admin first, so /readyz answers 503 `starting` while the rest starts.
        let admin = Arc::new(Admin::new(
            AdminCore::empty(server, quarantine.clone(), health.clone()),
            &spec.admin,
        ));
        let admin_addr = match (spec.admin.address, &io) {
            (Some(addr), Some(io)) => {
                let router = crate::admin::http::router(admin.clone(), &metrics);
                match crate::admin::http::serve(router, addr, io, partial.admin_stop.clone()) {
                    Ok(a) => {
                        tracing::info!(server, address = %a, "admin_listening");
                        Some(a)
                    }
                    Err(e) => fail!(
                        partial,
                        StartError {
                            component: "admin".into(),
                            error: format!("{addr}: {}", io_error_text(&e)),
                        }
                    ),
                }
            }
            _ => None,
        };
        // Step 4: sinks.
        let mut sink_map: HashMap<String, SinkHandle<E>> = spec
            .memory_sinks
            .iter()
            .map(|(n, c)| (n.clone(), SinkHandle::memory(leak(n), *c)))
            .collect();
        let mut sink_stats: Vec<crate::metrics::SinkSource<E>> =
            sink_map.values().map(|h| (h.clone(), None)).collect();
        let placement_of = |name: &str, default_agent: &str| {
            spec.placements
                .get(name)
                .cloned()
                .unwrap_or(AgentPlacement {
                    agent: default_agent.into(),
                    idle: spec.agent_idle,
                    core: None,
                })
        };
        // Hosted sinks, one agent per placement, in first-use order (so the agent hosting
        // the quarantine sink, moved last, also drains last).
        let mut by_agent: Vec<(AgentPlacement, Vec<crate::sink_agent::SinkSpec<E>>)> = Vec::new();
        for sk in spec.sinks {
            let pl = placement_of(&sk.name, "sinks");
            match by_agent.iter_mut().find(|(p, _)| p.agent == pl.agent) {
                Some((_, v)) => v.push(sk),
                None => by_agent.push((pl, vec![sk])),
            }
        }
        if let Some(q) = &spec.quarantine_sink
            && let Some(i) = by_agent
                .iter()
                .position(|(_, v)| v.iter().any(|s| s.name == *q))
        {
            let last = by_agent.remove(i);
            by_agent.push(last);
        }
        let mut sink_agents: Vec<(AgentPlacement, crate::sink_agent::SinkAgent, Vec<String>)> =
            Vec::new();
        let stop_sink_agents =
            |agents: Vec<(AgentPlacement, crate::sink_agent::SinkAgent, Vec<String>)>| {
                for (_, mut a, _) in agents.into_iter().rev() {
                    a.shutdown(Duration::ZERO);
                }
            };
        if let Some(io) = &io {
            for (pl, specs) in by_agent {
                let env = crate::sink_agent::SinkEnv {
                    name: "",
                    server,
                    connect_timeout: spec.connect_timeout,
                    io: io.clone(),
                };
                match crate::sink_agent::start(specs, &env, &pl, quarantine.clone()) {
                    Ok((agent, hosted)) => {
                        let mut names = Vec::new();
                        for (h, st) in hosted {
                            names.push(h.name().to_string());
                            sink_map.insert(h.name().to_string(), h.clone());
                            sink_stats.push((h, Some(st)));
                        }
                        sink_agents.push((pl, agent, names));
                    }
                    Err(e) => {
                        stop_sink_agents(sink_agents);
                        fail!(partial, e)
                    }
                }
            }
        }
        for (_, sink) in &spec.pipes {
            let h = SinkHandle::pipe(leak(sink));
            sink_stats.push((h.clone(), None));
            sink_map.insert(sink.clone(), h);
        }
        if let Some(qs) = &spec.quarantine_sink {
            match sink_map.get(qs) {
                Some(h) => {
                    let h = h.clone();
                    quarantine.set_sink(Box::new(move |rec| h.send_record(rec)));
                }
                None => tracing::error!(
                    sink = %qs,
                    "quarantine sink did not start; records go to the memory ring"
                ),
            }
        }
        let sinks: Arc<HashMap<String, SinkHandle<E>>> = Arc::new(sink_map);

        // Step 5: services, in declaration order: init, then start.
        let mut services: Vec<Arc<ServiceEntry>> = Vec::new();
        let mut service_agents: Vec<AgentPlacement> = Vec::new();
        for sv in spec.services {
            let built: Result<
                crate::service::ServiceHandle,
                (String, Option<crate::service::ServiceHandle>),
            > = match (sv.factory)() {
                Err(e) => Err((e, None)),
                Ok(handle) => {
                    let svc = handle.service().clone();
                    let up = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        svc.init().and_then(|()| svc.start())
                    }))
                    .unwrap_or_else(|_| Err("panicked".into()));
                    match up {
                        Ok(()) => Ok(handle),
                        Err(e) => {
                            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                svc.tear_down()
                            }));
                            Err((e, Some(handle)))
                        }
                    }
                }
            };
            match built {
                Ok(handle) => {
                    tracing::info!(component = %sv.name, kind = %sv.type_name, agent = sv.agent.as_ref().map(|a| a.agent.as_str()), "component_started");
                    if let Some(a) = &sv.agent
                        && !service_agents.iter().any(|p| p.agent == a.agent)
                    {
                        service_agents.push(a.clone());
                    }
                    services.push(Arc::new(ServiceEntry {
                        name: sv.name,
                        type_name: sv.type_name,
                        critical: sv.critical,
                        agent: sv.agent.map(|a| a.agent),
                        handle,
                        state: AtomicU8::new(SERVICE_STARTED),
                    }));
                }
                Err((e, _)) if sv.critical => {
                    stop_services(&services);
                    stop_sink_agents(sink_agents);
                    fail!(
                        partial,
                        StartError {
                            component: format!("service '{}' ({})", sv.name, sv.type_name),
                            error: e,
                        }
                    );
                }
                Err((e, handle)) => {
                    tracing::error!(service = %sv.name, kind = %sv.type_name, error = %e, "service failed to start");
                    // Listed as failed (services.list, service_up 0); readiness ignores it.
                    if let Some(handle) = handle {
                        services.push(Arc::new(ServiceEntry {
                            name: sv.name,
                            type_name: sv.type_name,
                            critical: false,
                            agent: None,
                            handle,
                            state: AtomicU8::new(SERVICE_FAILED),
                        }));
                    }
                }
            }
        }
        let services = Arc::new(services);
        // Step 6: groups build, subscribe, init and start their processors.
        let mut started: Vec<Started<E>> = Vec::new();
        let mut failure: Option<StartError> = None;
        for g in spec.groups {
            let (stx, srx) = sync_channel(1);
            let (wtx, wrx) = sync_channel(1);
            let (gtx, grx) = sync_channel(1);
            let name = g.name;
            let env = GroupEnv {
                server,
                feeds: feed_names.clone(),
                broadcast: broadcast.clone(),
                wrap_named: wrap_named.clone(),
                sinks: sinks.clone(),
                services: services.clone(),
                quarantine: quarantine.clone(),
                startup: stx,
                wiring: wrx,
                go: grx,
            };
            match group::spawn(g, env) {
                Ok((shared, h)) => {
                    shared
                        .latency_enabled
                        .store(spec.latency_enabled, Ordering::Relaxed);
                    shared
                        .snapshot_ms
                        .store(spec.snapshot_ms, Ordering::Relaxed);
                    started.push((shared, h, srx, wtx, gtx))
                }
                Err(e) => {
                    failure = Some(StartError {
                        component: format!("group '{name}'"),
                        error: e.to_string(),
                    });
                    break;
                }
            }
        }
        let mut subscribed: Vec<Vec<u32>> = Vec::new();
        let mut custom: Vec<crate::admin::CustomCommand> = Vec::new();
        if failure.is_none() {
            'groups: for (shared, _, srx, _, _) in &started {
                match srx.recv_timeout(spec.start_timeout) {
                    Ok(StartMsg::Ready(f, commands, taken)) => {
                        // MNG-R23: sending into a pipe this group consumes under `block`
                        // would wait on itself.
                        for (feed, sink) in &spec.pipes {
                            let Some(fi) = spec.feeds.iter().position(|x| x.name == *feed) else {
                                continue;
                            };
                            if taken.contains(sink)
                                && f.contains(&(fi as u32))
                                && spec.feeds[fi].backpressure.policy == crate::queue::Policy::Block
                            {
                                failure = Some(StartError {
                                    component: format!("group '{}'", shared.name),
                                    error: format!(
                                        "sends to pipe '{feed}' and consumes it under `block`: it would wait on itself"
                                    ),
                                });
                                break 'groups;
                            }
                        }
                        subscribed.push(f);
                        for (name, help, processor) in commands {
                            let clash = crate::admin::COMMANDS.iter().any(|(n, ..)| *n == name)
                                || custom.iter().any(|c| c.name == name);
                            if clash {
                                failure = Some(StartError {
                                    component: format!("processor '{processor}'"),
                                    error: format!("admin command {name:?} is already taken"),
                                });
                                break 'groups;
                            }
                            custom.push(crate::admin::CustomCommand {
                                name,
                                help,
                                processor,
                                group: shared.clone(),
                            });
                        }
                    }
                    Ok(StartMsg::Failed(component, error)) => {
                        failure = Some(StartError { component, error });
                        break;
                    }
                    Err(_) => {
                        failure = Some(StartError {
                            component: format!("group '{}'", shared.name),
                            error: "did not start in time".into(),
                        });
                        break;
                    }
                }
            }
        }
        let stop_groups = |started: Vec<Started<E>>| {
            for (_, h, _, wtx, _) in started.into_iter().rev() {
                let _ = wtx.try_send(None);
                let _ = h.join();
            }
        };
        if let Some(f) = failure {
            stop_groups(started);
            stop_services(&services);
            stop_sink_agents(sink_agents);
            fail!(partial, f);
        }
        // Queues: one per (feed, subscribing group).
        let mut feeds: Vec<Arc<FeedShared>> = Vec::new();
        let mut per_feed_tx: Vec<Vec<(queue::Tx<E>, Arc<SubShared>)>> = Vec::new();
        let mut per_group_rx: Vec<Vec<Consumer<E>>> = started.iter().map(|_| Vec::new()).collect();
        let mut subs = Vec::new();
        for (fi, f) in spec.feeds.iter().enumerate() {
            feeds.push(Arc::new(FeedShared::new(
                feed_names[fi],
                fi as u32,
                f.multi,
                phase.clone(),
            )));
            let mut txs = Vec::new();
            for (gi, (shared, ..)) in started.iter().enumerate() {
                if !subscribed[gi].contains(&(fi as u32)) {
                    continue;
                }
                let mpsc = f.multi || f.backpressure.needs_eviction();
                let cap = f.queue_capacity as usize;
                let threshold = f
                    .backlog_threshold
                    .unwrap_or(((cap as u64 * u64::from(DEFAULT_BACKLOG_PCT)) / 100).max(1) as u32);
                let mut sub = SubShared::new(
                    feed_names[fi],
                    shared.name,
                    f.queue_capacity,
                    if mpsc { "mpsc" } else { "spsc" },
                    f.backpressure,
                    threshold,
                );
                sub.track_watermark = f.acknowledged;
                let sh = Arc::new(sub);
                let (tx, rx) = queue::channel(cap, mpsc);
                txs.push((tx, sh.clone()));
                per_group_rx[gi].push(Consumer {
                    feed_idx: fi as u32,
                    rx,
                    shared: sh.clone(),
                    last_seq: 0,
                });
                subs.push(sh);
            }
            per_feed_tx.push(txs);
        }
        let mut publishers = HashMap::new();
        for (fi, txs) in per_feed_tx.into_iter().enumerate() {
            publishers.insert(
                spec.feeds[fi].name.clone(),
                Publisher::new(feeds[fi].clone(), txs),
            );
        }
        for (feed, sink) in &spec.pipes {
            if let (Some(p), Some(h)) = (publishers.remove(feed), sinks.get(sink)) {
                h.install_pipe(p);
            }
        }
        // Step 7: feeds connect; a critical feed that cannot is a startup failure.
        let shutdown_request = CancellationToken::new();
        let mut runners: Vec<(String, FeedRunner<E>, FeedOut<E>)> = Vec::new();
        let mut feed_info: Vec<FeedInfo> = feeds
            .iter()
            .zip(&spec.feeds)
            .map(|(sh, f)| FeedInfo {
                shared: sh.clone(),
                type_name: if spec.pipes.iter().any(|(p, _)| *p == f.name) {
                    "pipe".into()
                } else {
                    "memory".into()
                },
                critical: true,
                broadcast: f.broadcast,
            })
            .collect();
        for src in spec.feed_sources {
            let Some(fi) = spec.feeds.iter().position(|f| f.name == src.feed) else {
                failure = Some(StartError {
                    component: format!("feed '{}' ({})", src.feed, src.type_name),
                    error: "no such feed".into(),
                });
                break;
            };
            feed_info[fi].type_name = src.type_name.clone();
            feed_info[fi].critical = src.critical;
            // Connected until the feed says otherwise: `timer` and `stdin` always are; the
            // others report their own state through `FeedOut::set_connected`.
            let shared = feeds[fi].clone();
            let Some(io) = io.clone() else {
                unreachable!("feed sources create the I/O runtime")
            };
            let env = FeedEnv {
                name: feed_names[fi],
                server,
                critical: src.critical,
                connect_timeout: spec.connect_timeout,
                io,
            };
            match (src.connect)(&env) {
                Ok(runner) => {
                    let publisher = publishers
                        .remove(&src.feed)
                        .expect("one publisher per feed");
                    let req = shutdown_request.clone();
                    let out = FeedOut {
                        subs: subs
                            .iter()
                            .filter(|s| s.feed == shared.name)
                            .cloned()
                            .collect(),
                        publisher,
                        shared,
                        quarantine: quarantine.clone(),
                        server,
                        stop: partial.feeds_stop.clone(),
                        request_shutdown: Arc::new(move || req.cancel()),
                    };
                    runners.push((src.type_name, runner, out));
                }
                Err(e) if src.critical => {
                    failure = Some(StartError {
                        component: format!("feed '{}' ({})", src.feed, src.type_name),
                        error: e,
                    });
                    break;
                }
                Err(e) => {
                    publishers.remove(&src.feed);
                    tracing::error!(feed = %src.feed, kind = %src.type_name, error = %e, "feed failed to start");
                }
            }
        }
        if let Some(f) = failure {
            drop(runners);
            stop_groups(started);
            stop_services(&services);
            stop_sink_agents(sink_agents);
            fail!(partial, f);
        }
        let mut groups = Vec::new();
        let mut threads = Vec::new();
        let mut gos = Vec::new();
        for ((shared, h, _, wtx, gtx), rx) in started.into_iter().zip(per_group_rx) {
            let _ = wtx.send(Some(rx));
            groups.push(shared);
            threads.push(h);
            gos.push(gtx);
        }
        // Step 8: publishers accept events from here; then the feeds run.
        phase.store(PHASE_RUNNING, Ordering::Release);
        for g in gos {
            let _ = g.send(true);
        }
        for sv in services.iter() {
            let svc = sv.handle.service().clone();
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| svc.start_complete()));
        }
        let services_stop = CancellationToken::new();
        let mut service_threads = Vec::new();
        let mut service_agent_stats: Vec<(String, Arc<AgentStats>, crate::idle::IdleStrategy)> =
            Vec::new();
        for pl in service_agents {
            let (agent, idle) = (pl.agent.clone(), pl.idle);
            let hosted: Vec<Arc<ServiceEntry>> = services
                .iter()
                .filter(|s| s.agent.as_deref() == Some(agent.as_str()))
                .cloned()
                .collect();
            let stats = Arc::new(AgentStats {
                core: std::sync::atomic::AtomicI64::new(-1),
                ..Default::default()
            });
            match spawn_service_agent(&pl, hosted, stats.clone(), services_stop.clone()) {
                Ok(h) => {
                    service_threads.push(h);
                    service_agent_stats.push((agent, stats, idle));
                }
                Err(e) => {
                    tracing::error!(agent = %agent, error = %e, "service agent did not start")
                }
            }
        }
        // Agent-run feeds, grouped by the agent their placement names.
        type AgentFeeds<E> = Vec<(Box<dyn crate::feed::AgentFeed<E>>, FeedOut<E>)>;
        let mut feed_agents: Vec<(AgentPlacement, AgentFeeds<E>, Vec<String>)> = Vec::new();
        let mut feed_threads = Vec::new();
        let mut io_done = Vec::new();
        for (kind, runner, out) in runners {
            let name = out.name();
            let pl = placement_of(name, "feeds");
            let hosted_by: String = match &runner {
                FeedRunner::Agent(_) => pl.agent.clone(),
                FeedRunner::Thread(_) => name.to_string(),
                FeedRunner::Io(_) => "io".into(),
            };
            match runner {
                FeedRunner::Agent(f) => {
                    match feed_agents.iter_mut().find(|(p, ..)| p.agent == pl.agent) {
                        Some((_, v, names)) => {
                            v.push((f, out));
                            names.push(name.to_string());
                        }
                        None => feed_agents.push((pl, vec![(f, out)], vec![name.to_string()])),
                    }
                }
                FeedRunner::Thread(run) => {
                    match std::thread::Builder::new()
                        .name(name.chars().take(15).collect())
                        .spawn(move || run(out))
                    {
                        Ok(h) => feed_threads.push(h),
                        Err(e) => {
                            tracing::error!(feed = name, kind, error = %e, "feed thread did not start")
                        }
                    }
                }
                FeedRunner::Io(task) => {
                    if let Some(io) = &io {
                        // Shutdown waits for these: a feed's last act may be an upstream
                        // acknowledgement (redis-stream's final XACK).
                        let (tx, rx) = sync_channel::<()>(1);
                        let fut = task(out);
                        io.spawn(async move {
                            fut.await;
                            let _ = tx.try_send(());
                        });
                        io_done.push(rx);
                    }
                }
            }
            tracing::info!(
                component = name,
                kind,
                agent = %hosted_by,
                "component_started"
            );
        }
        let mut feed_agent_info: Vec<(AgentPlacement, Arc<AgentStats>, Vec<String>)> = Vec::new();
        for (pl, hosted, names) in feed_agents {
            let stats = Arc::new(AgentStats {
                core: std::sync::atomic::AtomicI64::new(-1),
                ..Default::default()
            });
            match crate::feed::spawn_agent(hosted, &pl, stats.clone(), partial.feeds_stop.clone()) {
                Ok(h) => {
                    feed_threads.push(h);
                    feed_agent_info.push((pl, stats, names));
                }
                Err(e) => {
                    tracing::error!(agent = %pl.agent, error = %e, "feeds agent did not start")
                }
            }
        }
        let mut watched_agents: Vec<(&'static str, Arc<AgentStats>)> = Vec::new();
        let mut agents: Vec<AgentInfo> = groups
            .iter()
            .map(|g| AgentInfo {
                name: g.name.to_string(),
                role: "group",
                idle_strategy: g.idle.name(),
                hosts: g.procs.lock().iter().map(|p| p.name.to_string()).collect(),
                source: AgentSource::Group(g.clone()),
            })
            .collect();
        for (pl, stats, names) in feed_agent_info {
            watched_agents.push((leak(&pl.agent), stats.clone()));
            agents.push(AgentInfo {
                name: pl.agent.clone(),
                role: "feeds",
                idle_strategy: pl.idle.name(),
                hosts: names,
                source: AgentSource::Stats(stats),
            });
        }
        for (pl, a, names) in &sink_agents {
            watched_agents.push((leak(&pl.agent), a.agent.clone()));
            agents.push(AgentInfo {
                name: pl.agent.clone(),
                role: "sinks",
                idle_strategy: pl.idle.name(),
                hosts: names.clone(),
                source: AgentSource::Stats(a.agent.clone()),
            });
        }
        for (agent, stats, idle) in &service_agent_stats {
            let leaked: &'static str = leak(agent);
            watched_agents.push((leaked, stats.clone()));
            agents.push(AgentInfo {
                name: agent.clone(),
                role: "service",
                idle_strategy: idle.name(),
                hosts: services
                    .iter()
                    .filter(|s| s.agent.as_deref() == Some(agent.as_str()))
                    .map(|s| s.name.clone())
                    .collect(),
                source: AgentSource::Stats(stats.clone()),
            });
        }
        let watched_agents_for_metrics: Vec<(String, Arc<AgentStats>)> = watched_agents
            .iter()
            .map(|(n, s)| (n.to_string(), s.clone()))
            .collect();
        let monitor_stop = Arc::new(AtomicBool::new(false));
        // Started before the first check, so readiness never shows a stale `starting`.
        health.set_started();
        let (first_tx, first_rx) = sync_channel::<()>(1);
        let monitor = crate::health::spawn_monitor(
            health.clone(),
            crate::health::Watched {
                groups: groups.clone(),
                subs: subs.clone(),
                agents: watched_agents,
                feeds: feed_info
                    .iter()
                    .map(|f| (f.shared.clone(), f.critical))
                    .collect(),
                services: services.iter().cloned().collect(),
            },
            monitor_stop.clone(),
            first_tx,
        )
        .ok();
        // Readiness is current when start returns (the first check has run).
        let _ = first_rx.recv_timeout(Duration::from_secs(1));
        let collector = crate::metrics::MongooseCollector::new(crate::metrics::Sources {
            feeds: feeds.clone(),
            subs: subs.clone(),
            groups: groups.clone(),
            quarantine: quarantine.clone(),
            sinks: sink_stats,
            health: health.clone(),
            admin: Some(admin.clone()),
            services: services.iter().cloned().collect(),
            agents: watched_agents_for_metrics,
        });
        if let Err(e) = metrics.registry().register_collector(Box::new(collector)) {
            tracing::error!(error = %e, "metrics collector not registered");
        }
        admin.set_core(AdminCore {
            server: spec.name.clone(),
            feeds: feed_info,
            subs: subs.clone(),
            groups: groups.clone(),
            agents,
            processor_types: spec.processor_types,
            services: services.iter().cloned().collect(),
            custom,
            quarantine: quarantine.clone(),
            health: health.clone(),
        });
        tracing::info!(
            server,
            startup_ms = t0.elapsed().as_millis() as u64,
            "server_ready"
        );
        let Partial {
            admin_stop,
            feeds_stop,
            runtime,
        } = partial;
        Ok(RunningServer {
            name: spec.name,
            phase,
            feeds,
            publishers: Mutex::new(publishers),
            groups,
            threads: Mutex::new(threads),
            subs,
            sinks,
            quarantine,
            stopped: AtomicBool::new(false),
            sink_agents: Mutex::new(sink_agents.into_iter().map(|(_, a, _)| a).collect()),
            health,
            metrics,
            monitor_stop,
            monitor: Mutex::new(monitor),
            admin,
            admin_addr,
            admin_stop,
            feeds_stop,
            feed_threads: Mutex::new(feed_threads),
            io_done: Mutex::new(io_done),
            services,
            reload_ctx: Mutex::new(None),
            services_stop,
            service_threads: Mutex::new(service_threads),
            shutdown_request,
            runtime: Mutex::new(runtime),
            unrouted: AtomicU64::new(0),
        })
    }
}

/// `stop` then `tear_down` on started services, in reverse declaration order.
pub(super) fn stop_services(services: &[Arc<ServiceEntry>]) {
    for sv in services.iter().rev() {
        if sv.state.swap(SERVICE_STOPPED, Ordering::AcqRel) != SERVICE_STARTED {
            continue;
        }
        let svc = sv.handle.service().clone();
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            svc.stop();
            svc.tear_down();
        }));
    }
}

/// An agent thread running `do_work` of its services every duty cycle until `stop`; a
/// service whose `do_work` panics is marked failed and no longer driven (MNG-R20).
fn spawn_service_agent(
    placement: &AgentPlacement,
    hosted: Vec<Arc<ServiceEntry>>,
    stats: Arc<AgentStats>,
    stop: CancellationToken,
) -> std::io::Result<JoinHandle<()>> {
    let (name, idle, core) = (placement.agent.clone(), placement.idle, placement.core);
    std::thread::Builder::new()
        .name(name.chars().take(15).collect())
        .spawn(move || {
            crate::idle::pin_current(&name, core, &stats.core);
            let mut idler = crate::idle::Idler::new(idle);
            while !stop.is_cancelled() {
                let mut work = 0usize;
                for sv in &hosted {
                    if sv.state.load(Ordering::Acquire) != SERVICE_STARTED {
                        continue;
                    }
                    let svc = sv.handle.service();
                    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| svc.do_work())) {
                        Ok(n) => work += n,
                        Err(_) => {
                            sv.state.store(SERVICE_FAILED, Ordering::Release);
                            tracing::error!(service = %sv.name, "service do_work panicked; marked failed");
                        }
                    }
                }
                stats
                    .duty_cycles
                    .store(stats.duty_cycles.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
                if work == 0 {
                    stats
                        .idle_cycles
                        .store(stats.idle_cycles.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
                }
                idler.idle(work, &stats.state);
            }
        })
}

/// "address in use" rather than the OS's wording, so startup lines read the same everywhere.
fn io_error_text(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::AddrInUse => "address in use".into(),
        _ => e.to_string(),
    }
}
