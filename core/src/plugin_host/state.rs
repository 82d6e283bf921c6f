//! What one plugin instance's `Store` holds, and the host side of the plugin imports: log, clock,
//! config, the allow-listed HTTP call and the host-owned filter frame.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use wasmtime::component::{Resource, ResourceTable};
use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::{destination, filter, layout, overlay};
use super::http::HttpPolicy;

/// Data of one plugin instance's `Store`.
pub struct HostState {
    /// Plugin name, for log lines and errors.
    pub(crate) plugin: Arc<str>,
    /// WASI with nothing granted: no preopened dirs, no env, no args, sockets denied, stdio discarded.
    wasi: WasiCtx,
    /// Resources handed to the guest (WASI streams, filter frames).
    table: ResourceTable,
    /// Memory cap; remembers whether it refused a growth so a trap can be reported as out-of-memory.
    pub(crate) limiter: Limiter,
    /// The operator's checked settings plus manifest defaults.
    config: Arc<BTreeMap<String, serde_json::Value>>,
    /// Where a destination adapter may send HTTP requests; `None` for other kinds.
    http: Option<Arc<HttpPolicy>>,
    /// The last HTTP request the host refused, reported with the plugin's failure.
    pub(crate) refused_http: Option<String>,
}

impl HostState {
    pub(crate) fn new(
        plugin: Arc<str>,
        memory_bytes: usize,
        config: Arc<BTreeMap<String, serde_json::Value>>,
        http: Option<Arc<HttpPolicy>>,
    ) -> HostState {
        let mut b = WasiCtx::builder();
        b.allow_tcp(false).allow_udp(false).allow_ip_name_lookup(false);
        HostState {
            plugin,
            wasi: b.build(),
            table: ResourceTable::new(),
            limiter: Limiter::new(memory_bytes),
            config,
            http,
            refused_http: None,
        }
    }

    pub(crate) fn push_frame(&mut self, frame: FrameSlot) -> wasmtime::Result<Resource<FrameSlot>> {
        Ok(self.table.push(frame)?)
    }

    pub(crate) fn take_frame(&mut self, r: Resource<FrameSlot>) -> wasmtime::Result<FrameSlot> {
        Ok(self.table.delete(r)?)
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// `StoreLimits` plus a flag set when it refused to grow memory.
pub(crate) struct Limiter {
    limits: StoreLimits,
    cap: usize,
    pub(crate) refused: bool,
}

impl Limiter {
    fn new(cap: usize) -> Limiter {
        let limits = StoreLimitsBuilder::new()
            .memory_size(cap)
            .instances(64)
            .memories(16)
            .tables(64)
            .table_elements(100_000)
            .trap_on_grow_failure(true)
            .build();
        Limiter { limits, cap, refused: false }
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.cap {
            self.refused = true;
            return Err(wasmtime::format_err!(
                "memory limit of {} MiB reached (wanted {} MiB)",
                self.cap >> 20,
                desired >> 20
            ));
        }
        self.limits.memory_growing(current, desired, maximum)
    }

    fn table_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }
    fn tables(&self) -> usize {
        self.limits.tables()
    }
    fn memories(&self) -> usize {
        self.limits.memories()
    }
}

/// Milliseconds since the first call in this process (monotonic).
pub(crate) fn monotonic_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// Longest log line a plugin may write; the rest is cut so a plugin cannot flood the log.
const MAX_LOG_LINE: usize = 2048;

impl layout::backyard::plugin::types::Host for HostState {}

impl layout::backyard::plugin::host::Host for HostState {
    fn log(&mut self, level: layout::backyard::plugin::host::LogLevel, message: String) -> wasmtime::Result<()> {
        use layout::backyard::plugin::host::LogLevel;
        let mut m = message;
        if m.len() > MAX_LOG_LINE {
            let mut cut = MAX_LOG_LINE;
            while !m.is_char_boundary(cut) {
                cut -= 1;
            }
            m.truncate(cut);
            m.push('…');
        }
        let plugin = &*self.plugin;
        match level {
            LogLevel::Trace => tracing::trace!(plugin, "{m}"),
            LogLevel::Debug => tracing::debug!(plugin, "{m}"),
            LogLevel::Info => tracing::info!(plugin, "{m}"),
            LogLevel::Warn => tracing::warn!(plugin, "{m}"),
            LogLevel::Error => tracing::error!(plugin, "{m}"),
        }
        Ok(())
    }

    fn now_ms(&mut self) -> wasmtime::Result<u64> {
        Ok(monotonic_ms())
    }

    fn config(&mut self, key: String) -> wasmtime::Result<Option<layout::backyard::plugin::types::ConfigValue>> {
        use layout::backyard::plugin::types::ConfigValue;
        use serde_json::Value;
        Ok(match self.config.get(&key) {
            Some(Value::String(s)) => Some(ConfigValue::Text(s.clone())),
            Some(Value::Bool(b)) => Some(ConfigValue::Flag(*b)),
            Some(Value::Number(n)) => match n.as_i64() {
                Some(i) => Some(ConfigValue::Integer(i)),
                None => n.as_f64().map(ConfigValue::Number),
            },
            _ => None,
        })
    }
}

impl destination::backyard::plugin::http::Host for HostState {
    fn send(
        &mut self,
        request: destination::backyard::plugin::http::Request,
    ) -> wasmtime::Result<
        Result<destination::backyard::plugin::http::Response, destination::backyard::plugin::http::HttpError>,
    > {
        use destination::backyard::plugin::http::HttpError;
        let Some(policy) = self.http.clone() else {
            return Ok(Err(HttpError::NotAllowed("this plugin may not make HTTP requests".into())));
        };
        let result = policy.send(request);
        if let Err(HttpError::NotAllowed(why)) = &result {
            tracing::warn!(plugin = &*self.plugin, "refused HTTP request: {why}");
            self.refused_http = Some(why.clone());
        }
        Ok(result)
    }
}

/// The host-owned frame a filter reads once and writes once.
pub struct FrameSlot {
    pub(crate) width: u32,
    pub(crate) height: u32,
    /// The frame; moved into the guest by `read` (one copy) and replaced by `write` (one copy).
    pub(crate) rgba: Vec<u8>,
    /// `read` moved the pixels out.
    pub(crate) taken: bool,
    /// `write` stored new pixels.
    pub(crate) written: bool,
}

impl filter::backyard::plugin::frames::Host for HostState {}

impl filter::backyard::plugin::frames::HostFrame for HostState {
    fn width(&mut self, f: Resource<FrameSlot>) -> wasmtime::Result<u32> {
        Ok(self.table.get(&f)?.width)
    }

    fn height(&mut self, f: Resource<FrameSlot>) -> wasmtime::Result<u32> {
        Ok(self.table.get(&f)?.height)
    }

    fn read(&mut self, f: Resource<FrameSlot>) -> wasmtime::Result<Vec<u8>> {
        let slot = self.table.get_mut(&f)?;
        if slot.taken {
            return Err(wasmtime::format_err!("frame.read called twice in one call"));
        }
        slot.taken = true;
        Ok(std::mem::take(&mut slot.rgba))
    }

    fn write(&mut self, f: Resource<FrameSlot>, rgba: Vec<u8>) -> wasmtime::Result<Result<(), String>> {
        let slot = self.table.get_mut(&f)?;
        let want = slot.width as usize * slot.height as usize * 4;
        if rgba.len() != want {
            return Ok(Err(format!("frame.write wants {want} bytes, got {}", rgba.len())));
        }
        slot.rgba = rgba;
        slot.written = true;
        Ok(Ok(()))
    }

    fn drop(&mut self, f: Resource<FrameSlot>) -> wasmtime::Result<()> {
        // The host created every frame and takes it back itself after the call; a guest only ever
        // holds borrows, so there is nothing to free here.
        let _ = f;
        Ok(())
    }
}

// The overlay world adds no imports beyond the shared ones; this keeps its module's types in use.
#[allow(unused_imports)]
use overlay::OverlayPlugin as _;
