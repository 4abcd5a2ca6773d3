//! Shutdown (MNG-R30): readiness first, feeds closed, the I/O feeds' last publishes, the
//! groups' bounded drain, services, sinks (the quarantine sink's agent last), admin.

use super::*;

impl<E: Event> RunningServer<E> {
    /// Stops feeds, drains groups until `deadline` (leftovers quarantined as
    /// `shutdown_undrained`), stops processors, closes sinks.
    pub fn shutdown(&self, deadline: Duration) {
        self.shutdown_for(deadline, "shutdown()");
    }

    /// Ends a drain in progress now (a second signal, decision 2): groups stop draining at
    /// their next cycle and quarantine what is left as `shutdown_undrained`.
    pub fn force_drain(&self) {
        tracing::warn!(server = %self.name, "second signal: skipping the rest of the drain");
        let now = Instant::now();
        for g in &self.groups {
            if !g.exited.load(Ordering::Acquire) {
                let _ = g.send(Control::Shutdown(now));
            }
        }
    }

    /// [`RunningServer::shutdown`], naming what triggered it in `shutdown_begin`.
    pub fn shutdown_for(&self, deadline: Duration, signal: &str) {
        if self.stopped.swap(true, Ordering::AcqRel) {
            return;
        }
        tracing::info!(server = %self.name, signal, deadline_ms = deadline.as_millis() as u64, "shutdown_begin");
        let started = Instant::now();
        // MNG-R30: readiness fails first, then the feeds stop: publishes from here on get
        // `Closed`.
        self.health.set_shutting_down();
        self.feeds_stop.cancel();
        self.phase.store(PHASE_CLOSED, Ordering::Release);
        for h in self.feed_threads.lock().drain(..) {
            // A stdin reader blocked in read() cannot be interrupted; it ends with the
            // process, so only finished threads are joined.
            if h.is_finished() || h.thread().name() == Some("feeds") {
                let _ = h.join();
            }
        }
        // A publish that passed the phase check just before CLOSED still lands in a queue;
        // the I/O feeds' tasks end only after their last publish, so waiting for them here,
        // while the groups still consume, puts every accepted event ahead of the drain.
        // redis-stream also sends its final XACK here, once the groups' watermarks cover
        // what it published (step 6).
        let d = started + deadline;
        let io_deadline = Instant::now() + IO_FEED_FINISH;
        for rx in self.io_done.lock().drain(..) {
            let _ = rx.recv_timeout(io_deadline.saturating_duration_since(Instant::now()));
        }
        for g in self.groups.iter().rev() {
            while !g.send(Control::Shutdown(d)) {
                std::thread::yield_now();
            }
        }
        for h in self.threads.lock().drain(..).rev() {
            let _ = h.join();
        }
        // Step 7: services, in reverse order.
        self.services_stop.cancel();
        for h in self.service_threads.lock().drain(..) {
            let _ = h.join();
        }
        super::start::stop_services(&self.services);
        // Sinks last: they drain what the groups forwarded, within what is left.
        for mut a in self.sink_agents.lock().drain(..) {
            a.shutdown(d.saturating_duration_since(Instant::now()));
        }
        for s in self.sinks.values() {
            s.close();
        }
        self.monitor_stop.store(true, Ordering::Release);
        if let Some(m) = self.monitor.lock().take() {
            m.thread().unpark();
            let _ = m.join();
        }
        self.admin_stop.cancel();
        if let Some(rt) = self.runtime.lock().take() {
            // Background: this may run inside a caller's runtime, where blocking is banned.
            rt.shutdown_background();
        }
        let undrained: u64 = self
            .subs
            .iter()
            .map(|s| s.shutdown_undrained.load(Ordering::Relaxed))
            .sum();
        tracing::info!(server = %self.name, undrained, duration_ms = started.elapsed().as_millis() as u64, "shutdown_complete");
        NAMES.lock().retain(|n| n != &self.name);
    }
}

impl<E: Event> Drop for RunningServer<E> {
    fn drop(&mut self) {
        self.shutdown(Duration::from_secs(1));
    }
}
