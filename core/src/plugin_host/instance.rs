//! One plugin instance (its own `Store`) and the failure policy around every call into it.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use wasmtime::{Engine, Store, Trap};

use super::bindings::{destination, filter, layout, overlay};
use super::state::HostState;
use super::{CallFailure, PluginEntry, PluginError};

/// The compiled, linked and type-checked form of a plugin, ready to instantiate in microseconds.
pub(crate) enum Pre {
    Layout(layout::LayoutPluginPre<HostState>),
    Overlay(overlay::OverlayPluginPre<HostState>),
    Destination(destination::DestinationPluginPre<HostState>),
    Filter(filter::FilterPluginPre<HostState>),
}

/// A world's bindings that can be instantiated from a [`Pre`].
pub(crate) trait World: Sized {
    fn instantiate(pre: &Pre, store: &mut Store<HostState>) -> wasmtime::Result<Self>;
}

macro_rules! world {
    ($ty:ty, $variant:ident) => {
        impl World for $ty {
            fn instantiate(pre: &Pre, store: &mut Store<HostState>) -> wasmtime::Result<Self> {
                match pre {
                    Pre::$variant(p) => p.instantiate(store),
                    _ => Err(wasmtime::format_err!("plugin changed kind; reload it as a new plugin")),
                }
            }
        }
    };
}
world!(layout::LayoutPlugin, Layout);
world!(overlay::OverlayPlugin, Overlay);
world!(destination::DestinationPlugin, Destination);
world!(filter::FilterPlugin, Filter);

/// When an instance that keeps failing is switched off. The policy is scoped to the instance (one
/// broadcast's program holds its own), never the node: input that makes one broadcast's plugin fail switches
/// off that broadcast's instance only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailurePolicy {
    /// Failures within `window` that switch the instance off (K).
    pub max_failures: u32,
    pub window: Duration,
}

impl Default for FailurePolicy {
    fn default() -> Self {
        FailurePolicy { max_failures: 5, window: Duration::from_secs(60) }
    }
}

/// Health of one plugin across all its instances, shown by `list()`.
#[derive(Debug, Default)]
pub(crate) struct Health {
    pub(crate) total_failures: u64,
    pub(crate) total_calls: u64,
    pub(crate) last_error: Option<String>,
    /// Instances alive now that the failure policy switched off.
    pub(crate) switched_off: u32,
    /// Why the last instance was switched off.
    pub(crate) last_switch_off: Option<String>,
}

/// One live instance of a plugin: its `Store`, its bindings, and the generation of the compiled
/// plugin it was made from (a hot reload bumps the generation; the next call re-instantiates).
pub(crate) struct Slot<W: World> {
    pub(crate) entry: Arc<PluginEntry>,
    engine: Engine,
    live: Option<(Store<HostState>, W, u64)>,
    pub(crate) last_failure: Option<PluginError>,
    /// This instance's recent failure times, oldest first, within the policy window.
    recent: VecDeque<Instant>,
    /// Set when the failure policy switched this instance off, with the generation it failed on: a hot
    /// reload (a new generation) gives it another chance.
    switched_off: Option<(String, u64)>,
}

impl<W: World> Drop for Slot<W> {
    fn drop(&mut self) {
        if self.switched_off.is_some() {
            self.entry.health.lock().switched_off -= 1;
        }
    }
}

impl<W: World> Slot<W> {
    pub(crate) fn new(entry: Arc<PluginEntry>, engine: Engine) -> Result<Slot<W>, PluginError> {
        let mut slot =
            Slot { entry, engine, live: None, last_failure: None, recent: VecDeque::new(), switched_off: None };
        slot.instantiate().map_err(|f| slot.entry.call_error(f))?;
        Ok(slot)
    }

    fn instantiate(&mut self) -> Result<(), CallFailure> {
        self.live = None;
        let generation = self.entry.generation.load(Ordering::Acquire);
        let compiled = self.entry.compiled();
        let limits = compiled.manifest.limits;
        let state = HostState::new(
            self.entry.name.clone(),
            limits.memory_mb as usize * 1024 * 1024,
            compiled.settings.clone(),
            compiled.http.clone(),
        );
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        // A start function that loops is stopped like any other call.
        store.set_epoch_deadline(limits.call_ms.max(1) as u64 + 1);
        let bindings = W::instantiate(&compiled.pre, &mut store).map_err(|e| classify(&store, e, limits.call_ms))?;
        self.live = Some((store, bindings, generation));
        Ok(())
    }

    /// Run `f` against the instance under the plugin's deadline and memory cap. A failure of any kind
    /// is counted against this instance, logged with the plugin's name, and leaves a fresh instance for
    /// the next call.
    pub(crate) fn call<T>(
        &mut self,
        f: impl FnOnce(&W, &mut Store<HostState>) -> wasmtime::Result<T>,
        check: impl FnOnce(&T) -> Result<(), String>,
    ) -> Result<T, PluginError> {
        let generation = self.entry.generation.load(Ordering::Acquire);
        if let Some((reason, failed_on)) = &self.switched_off {
            if *failed_on == generation {
                let err = PluginError::Disabled { plugin: self.entry.name.to_string(), reason: reason.clone() };
                self.last_failure = Some(err.clone());
                return Err(err);
            }
            // Reloaded since: try the new version.
            self.switched_off = None;
            self.recent.clear();
            self.entry.health.lock().switched_off -= 1;
        }
        let stale = self.live.as_ref().is_none_or(|(_, _, g)| *g != generation);
        if stale && let Err(f) = self.instantiate() {
            return Err(self.fail(f));
        }
        let call_ms = self.entry.compiled().manifest.limits.call_ms;
        let (store, bindings, _) = self.live.as_mut().expect("instantiate() above either filled live or returned");
        store.data_mut().limiter.refused = false;
        store.data_mut().refused_http = None;
        // One epoch tick is a millisecond; +1 because the current tick is already partly over.
        store.set_epoch_deadline(call_ms as u64 + 1);
        self.entry.health.lock().total_calls += 1;
        let outcome = match f(bindings, store) {
            Ok(v) => match check(&v) {
                Ok(()) => Ok(v),
                Err(why) => Err(CallFailure::InvalidOutput(why)),
            },
            Err(e) => Err(classify(store, e, call_ms)),
        };
        match outcome {
            Ok(v) => {
                self.last_failure = None;
                Ok(v)
            }
            Err(f) => {
                // A trap may leave the instance's memory inconsistent: never call into it again.
                self.live = None;
                let err = self.fail(f);
                if let Err(f) = self.instantiate() {
                    tracing::warn!(plugin = &*self.entry.name, "re-instantiation failed: {f}");
                }
                Err(err)
            }
        }
    }

    fn fail(&mut self, f: CallFailure) -> PluginError {
        let err = self.entry.call_error(f);
        let message = err.to_string();
        let policy = self.entry.policy;
        let now = Instant::now();
        self.recent.push_back(now);
        while self.recent.front().is_some_and(|t| now.duration_since(*t) > policy.window) {
            self.recent.pop_front();
        }
        let switch_off = self.switched_off.is_none() && self.recent.len() as u32 >= policy.max_failures;
        {
            let mut health = self.entry.health.lock();
            health.total_failures += 1;
            health.last_error = Some(message.clone());
            if switch_off {
                let reason = format!(
                    "switched off for this broadcast after {} failures in {} s; last: {message}",
                    self.recent.len(),
                    policy.window.as_secs()
                );
                health.switched_off += 1;
                health.last_switch_off = Some(reason.clone());
                self.switched_off = Some((reason, self.entry.generation.load(Ordering::Acquire)));
            }
        }
        tracing::warn!(plugin = &*self.entry.name, "plugin call failed: {message}");
        if switch_off {
            tracing::error!(plugin = &*self.entry.name, "plugin instance switched off after repeated failures");
        }
        self.last_failure = Some(err.clone());
        err
    }
}

/// Turn a wasmtime error into the failure the operator should read.
fn classify(store: &Store<HostState>, e: wasmtime::Error, call_ms: u32) -> CallFailure {
    if store.data().limiter.refused {
        return CallFailure::OutOfMemory(format!("{e}"));
    }
    if let Some(host) = &store.data().refused_http {
        return CallFailure::HttpRefused(host.clone());
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => CallFailure::Timeout(call_ms),
        Some(trap) => CallFailure::Trap(trap.to_string()),
        None => CallFailure::Trap(format!("{e:#}").lines().next().unwrap_or("unknown error").to_string()),
    }
}
