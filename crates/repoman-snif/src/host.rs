//! The engine: load a module (validated, cached by content hash), check its imports against its
//! grants, instantiate it in a fresh store with a memory limit, and call it through the ABI with
//! a fuel budget and a wall-clock deadline.
//!
//! ABI 1 (docs/snif.md): the module exports `memory`, `snif_alloc(len: i32) -> i32` and
//! `snif_call(ptr: i32, len: i32) -> i64`. The host asks `snif_alloc` for room, writes the
//! input JSON there, calls `snif_call`, and reads the output JSON at `result >> 32` with length
//! `result & 0xffff_ffff`.
//!
//! Invariants:
//! - Each call gets a new store and instance: nothing a SNIF did in one call survives to the
//!   next, and one SNIF's call cannot see another's memory.
//! - Fuel is handed out in slices; between slices the host checks the deadline, so a loop is
//!   stopped by whichever comes first, the budget or the deadline (no thread, no signal).
//! - The output length is checked against the limit before a byte is copied.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use wasmi::{
    CompilationMode, Config, EnforcedLimits, Engine, ExternType, Linker, Module, ResourceLimiter,
    Store, TrapCode, TypedFunc, TypedResumableCall, WasmParams, WasmResults,
};
use wasmi_core::LimiterError;

use crate::error::SnifError;
use crate::interface::{self, Interface};
use crate::manifest::{Capability, Limits};
use crate::wasi::{self, HasWasi, WasiCtx};

/// The engine and its version, recorded with cached modules and shown by `snif inspect`.
pub const ENGINE: &str = "wasmi 2";

/// Fuel handed out per slice; the deadline is checked between slices.
const FUEL_SLICE: u64 = 2_000_000;

/// The capabilities the user granted a SNIF (for one module hash).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Grants {
    /// The directory pre-opened read-only (absolute, canonical when granted).
    pub filesystem: Option<PathBuf>,
    pub clock: bool,
    pub random: bool,
    /// Environment values the SNIF sees.
    pub env: Vec<(String, String)>,
}

impl Grants {
    /// Whether `cap` is granted.
    pub fn allows(&self, cap: Capability) -> bool {
        match cap {
            Capability::Stdio => true,
            Capability::Filesystem => self.filesystem.is_some(),
            Capability::Clock => self.clock,
            Capability::Random => self.random,
            Capability::Env => !self.env.is_empty(),
        }
    }

    fn capabilities(&self) -> Vec<Capability> {
        [
            Capability::Filesystem,
            Capability::Clock,
            Capability::Random,
            Capability::Env,
        ]
        .into_iter()
        .filter(|c| self.allows(*c))
        .collect()
    }
}

/// One import a module declares, and what the host makes of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Import {
    /// `module.name`, e.g. `wasi_snapshot_preview1.path_open`.
    pub name: String,
    /// `func`, `memory`, `table` or `global`.
    pub kind: &'static str,
    /// The capability it needs; `None` when the host does not provide it.
    pub capability: Option<Capability>,
    /// Why the host does not provide it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unsupported: Option<String>,
}

/// A compiled (validated) module and its imports.
#[derive(Debug)]
pub struct Compiled {
    module: Module,
    pub imports: Vec<Import>,
}

/// What to call: a SNIF's identity, bytes, grants and limits.
#[derive(Debug, Clone)]
pub struct Snif {
    pub name: String,
    pub interface: Interface,
    /// BLAKE3 hex of `wasm`: the cache key.
    pub module_hash: String,
    pub wasm: Arc<[u8]>,
    pub grants: Grants,
    pub limits: Limits,
}

/// What one call returned.
#[derive(Debug, Clone)]
pub struct CallOutput {
    pub output: Vec<u8>,
    pub fuel_used: u64,
    /// What the SNIF wrote to stdout and stderr (bounded by [`Limits::log`]).
    pub log: Vec<u8>,
    pub log_dropped: u64,
    pub elapsed: Duration,
}

struct Data {
    wasi: WasiCtx,
    limiter: Limiter,
}

impl HasWasi for Data {
    fn wasi(&mut self) -> &mut WasiCtx {
        &mut self.wasi
    }
}

/// Memory and table limits; remembers a refusal so the error names the memory limit.
struct Limiter {
    memory: usize,
    denied: bool,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> Result<bool, LimiterError> {
        if desired > self.memory {
            self.denied = true;
            return Err(LimiterError::ResourceLimiterDeniedAllocation);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> Result<bool, LimiterError> {
        Ok(desired <= 100_000)
    }

    fn instances(&self) -> usize {
        1
    }

    fn tables(&self) -> usize {
        4
    }

    fn memories(&self) -> usize {
        1
    }
}

/// The SNIF host: one engine, the WASI linker and the module cache. Share one per process.
pub struct Host {
    engine: Engine,
    linker: Linker<Data>,
    cache: Mutex<HashMap<String, Arc<Compiled>>>,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host").field("engine", &ENGINE).finish()
    }
}

impl Host {
    pub fn new() -> Result<Self, SnifError> {
        crate::schemas::register();
        let mut config = Config::default();
        config
            .consume_fuel(true)
            // Validate everything up front, translate function bodies on first use.
            .compilation_mode(CompilationMode::LazyTranslation)
            // Bounds on the module's structure (functions, globals, element sizes...), so a
            // hostile module cannot make validation itself expensive.
            .enforced_limits(EnforcedLimits::strict())
            .wasm_multi_memory(false);
        let engine = Engine::new(&config);
        let mut linker = Linker::new(&engine);
        wasi::add_to_linker(&mut linker).map_err(|e| SnifError::Engine(e.to_string()))?;
        Ok(Self {
            engine,
            linker,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// Validate `wasm` and list its imports, without caching (for install and inspect).
    pub fn analyze(&self, name: &str, wasm: &[u8]) -> Result<Compiled, SnifError> {
        let module = Module::new(&self.engine, wasm).map_err(|e| SnifError::InvalidModule {
            name: name.to_owned(),
            message: e.to_string(),
        })?;
        let imports = module
            .imports()
            .map(|imp| {
                let kind = match imp.ty() {
                    ExternType::Func(_) => "func",
                    ExternType::Memory(_) => "memory",
                    ExternType::Table(_) => "table",
                    ExternType::Global(_) => "global",
                };
                let (capability, unsupported) = if kind != "func" {
                    (
                        None,
                        Some("SNIFs define their own memory, tables and globals".into()),
                    )
                } else {
                    match wasi::capability_of(imp.module(), imp.name()) {
                        Ok(c) => (Some(c), None),
                        Err(why) => (None, Some(why)),
                    }
                };
                Import {
                    name: format!("{}.{}", imp.module(), imp.name()),
                    kind,
                    capability,
                    unsupported,
                }
            })
            .collect();
        for (export, want) in [
            ("memory", "memory"),
            ("snif_alloc", "func"),
            ("snif_call", "func"),
        ] {
            let found = module.exports().find(|e| e.name() == export).map(|e| {
                matches!(
                    (e.ty(), want),
                    (ExternType::Memory(_), "memory") | (ExternType::Func(_), "func")
                )
            });
            if found != Some(true) {
                return Err(SnifError::MissingExport {
                    name: name.to_owned(),
                    export: format!("{want} `{export}`"),
                    abi: crate::manifest::ABI_VERSION,
                });
            }
        }
        Ok(Compiled { module, imports })
    }

    /// The compiled module for `snif`, from the cache when this process compiled it before.
    pub fn compiled(&self, snif: &Snif) -> Result<Arc<Compiled>, SnifError> {
        if let Some(c) = self
            .cache
            .lock()
            .ok()
            .and_then(|c| c.get(&snif.module_hash).cloned())
        {
            return Ok(c);
        }
        let compiled = Arc::new(self.analyze(&snif.name, &snif.wasm)?);
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(snif.module_hash.clone(), compiled.clone());
        }
        Ok(compiled)
    }

    /// Whether the module with this hash is compiled in this process.
    pub fn is_cached(&self, module_hash: &str) -> bool {
        self.cache
            .lock()
            .map(|c| c.contains_key(module_hash))
            .unwrap_or(false)
    }

    /// Call `snif` with raw input bytes; returns the raw output bytes.
    pub fn call_raw(&self, snif: &Snif, input: &[u8]) -> Result<CallOutput, SnifError> {
        let started = Instant::now();
        let name = snif.name.as_str();
        let compiled = self.compiled(snif)?;
        for imp in &compiled.imports {
            match imp.capability {
                None => {
                    return Err(SnifError::UnsupportedImport {
                        name: name.to_owned(),
                        import: imp.name.clone(),
                        why: imp.unsupported.clone().unwrap_or_default(),
                    });
                }
                Some(cap) if !snif.grants.allows(cap) => {
                    return Err(SnifError::NotGranted {
                        name: name.to_owned(),
                        import: imp.name.clone(),
                        capability: cap.as_str().to_owned(),
                    });
                }
                Some(_) => {}
            }
        }
        if input.len() > snif.limits.input {
            return Err(SnifError::InvalidInput {
                name: name.to_owned(),
                message: format!(
                    "{} bytes is over the input limit of {} bytes",
                    input.len(),
                    snif.limits.input
                ),
            });
        }
        let preopen = match &snif.grants.filesystem {
            Some(dir) => Some(open_granted_dir(name, dir)?),
            None => None,
        };
        let data = Data {
            wasi: WasiCtx::new(
                snif.grants.capabilities(),
                snif.grants.env.clone(),
                preopen,
                snif.limits.log,
            ),
            limiter: Limiter {
                memory: snif.limits.memory,
                denied: false,
            },
        };
        let mut store = Store::new(&self.engine, data);
        store.limiter(|d| &mut d.limiter);
        let mut run = Run {
            store,
            name,
            limits: snif.limits,
            started,
            given: 0,
        };
        run.refuel(FUEL_SLICE)?;
        let instance = match self
            .linker
            .instantiate_and_start(&mut run.store, &compiled.module)
        {
            Ok(i) => i,
            Err(e) => return Err(run.error(&e)),
        };
        let memory = instance
            .get_memory(&run.store, "memory")
            .ok_or_else(|| missing(name, "memory `memory`"))?;
        let alloc: TypedFunc<i32, i32> = instance
            .get_typed_func(&run.store, "snif_alloc")
            .map_err(|_| missing(name, "func `snif_alloc(i32) -> i32`"))?;
        let call: TypedFunc<(i32, i32), i64> = instance
            .get_typed_func(&run.store, "snif_call")
            .map_err(|_| missing(name, "func `snif_call(i32, i32) -> i64`"))?;

        let len = input.len() as i32;
        let ptr = run.call(&alloc, len)?;
        memory
            .write(&mut run.store, ptr as u32 as usize, input)
            .map_err(|_| SnifError::Trap {
                name: name.to_owned(),
                message: format!(
                    "snif_alloc({len}) returned {ptr:#x}, which is not room for the input"
                ),
            })?;
        let packed = run.call(&call, (ptr, len))? as u64;
        let (out_ptr, out_len) = ((packed >> 32) as usize, packed & 0xffff_ffff);
        if out_len > snif.limits.output as u64 {
            return Err(SnifError::OutputTooLarge {
                name: name.to_owned(),
                len: out_len,
                limit: snif.limits.output,
            });
        }
        let mut output = vec![0u8; out_len as usize];
        memory
            .read(&run.store, out_ptr, &mut output)
            .map_err(|_| SnifError::MalformedOutput {
                name: name.to_owned(),
                message: format!(
                    "the output ({out_len} bytes at {out_ptr:#x}) lies outside the SNIF's memory"
                ),
            })?;
        let fuel_used = run.given - run.store.get_fuel().unwrap_or(0);
        let wasi = &mut run.store.data_mut().wasi;
        Ok(CallOutput {
            output,
            fuel_used,
            log: std::mem::take(&mut wasi.log),
            log_dropped: wasi.log_dropped,
            elapsed: started.elapsed(),
        })
    }

    /// Call `snif` with a JSON input, validated against its interface's input schema; the
    /// output is parsed and validated against the output schema.
    pub fn call_json(&self, snif: &Snif, input: &Value) -> Result<(Value, CallOutput), SnifError> {
        interface::validate_input(&snif.name, snif.interface, input)?;
        let bytes = serde_json::to_vec(input).map_err(|e| SnifError::InvalidInput {
            name: snif.name.clone(),
            message: e.to_string(),
        })?;
        let out = self.call_raw(snif, &bytes)?;
        let value = interface::parse_output(&snif.name, snif.interface, &out.output)?;
        Ok((value, out))
    }

    /// A typed call: `input` serialized, output deserialized into `O`.
    pub fn call_typed<I: Serialize, O: serde::de::DeserializeOwned>(
        &self,
        snif: &Snif,
        expected: Interface,
        input: &I,
    ) -> Result<O, SnifError> {
        if snif.interface != expected {
            return Err(SnifError::WrongInterface {
                name: snif.name.clone(),
                expected: expected.as_str().to_owned(),
                actual: snif.interface.as_str().to_owned(),
            });
        }
        let value = serde_json::to_value(input).map_err(|e| SnifError::InvalidInput {
            name: snif.name.clone(),
            message: e.to_string(),
        })?;
        let (out, _) = self.call_json(snif, &value)?;
        serde_json::from_value(out).map_err(|e| SnifError::MalformedOutput {
            name: snif.name.clone(),
            message: e.to_string(),
        })
    }
}

fn missing(name: &str, export: &str) -> SnifError {
    SnifError::MissingExport {
        name: name.to_owned(),
        export: export.to_owned(),
        abi: crate::manifest::ABI_VERSION,
    }
}

/// Open the granted directory: no symlink at the last component (the grant stored the
/// canonical path), read-only, close-on-exec.
fn open_granted_dir(name: &str, dir: &Path) -> Result<std::os::fd::OwnedFd, SnifError> {
    use rustix::fs::{Mode, OFlags};
    rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| SnifError::BadGrant {
        name: name.to_owned(),
        message: format!(
            "cannot open the granted directory {}: {e}; grant it again with \
             `repoman snif grant {name} --dir DIR`",
            dir.display()
        ),
    })
}

/// One call's store and budget.
struct Run<'a> {
    store: Store<Data>,
    name: &'a str,
    limits: Limits,
    started: Instant,
    /// Fuel handed out so far.
    given: u64,
}

impl Run<'_> {
    /// Hand out up to `want` more fuel, or fail when the budget or the deadline is spent.
    fn refuel(&mut self, want: u64) -> Result<(), SnifError> {
        if self.started.elapsed() >= self.limits.deadline {
            return Err(SnifError::DeadlineExceeded {
                name: self.name.to_owned(),
                deadline: self.limits.deadline,
            });
        }
        let left = self.limits.fuel.saturating_sub(self.given);
        if left == 0 {
            return Err(SnifError::FuelExhausted {
                name: self.name.to_owned(),
                fuel: self.limits.fuel,
            });
        }
        let add = want.min(left);
        let have = self.store.get_fuel().unwrap_or(0);
        self.given += add;
        self.store
            .set_fuel(have + add)
            .map_err(|e| self.error(&e))?;
        Ok(())
    }

    fn call<P: WasmParams, Q: WasmResults>(
        &mut self,
        f: &TypedFunc<P, Q>,
        params: P,
    ) -> Result<Q, SnifError> {
        let mut state = f.call_resumable(&mut self.store, params);
        loop {
            match state {
                Ok(TypedResumableCall::Finished(r)) => return Ok(r),
                Ok(TypedResumableCall::OutOfFuel(inv)) => {
                    let need = inv.required_fuel().max(FUEL_SLICE);
                    self.refuel(need)?;
                    state = inv.resume(&mut self.store);
                }
                Ok(TypedResumableCall::HostTrap(inv)) => {
                    return Err(self.error(inv.host_error()));
                }
                Err(e) => return Err(self.error(&e)),
            }
        }
    }

    fn error(&self, e: &wasmi::Error) -> SnifError {
        let name = self.name.to_owned();
        if self.store.data().limiter.denied {
            return SnifError::MemoryLimit {
                name,
                limit: self.limits.memory,
            };
        }
        if let Some(status) = e.i32_exit_status() {
            return SnifError::Exited { name, status };
        }
        match e.as_trap_code() {
            Some(TrapCode::OutOfFuel) => SnifError::FuelExhausted {
                name,
                fuel: self.given,
            },
            Some(TrapCode::GrowthOperationLimited) => SnifError::MemoryLimit {
                name,
                limit: self.limits.memory,
            },
            _ => SnifError::Trap {
                name,
                message: e.to_string(),
            },
        }
    }
}
