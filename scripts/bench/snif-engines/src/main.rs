//! Compile, instantiate and call one SNIF-shaped guest (ABI 1: `memory`, `snif_alloc`,
//! `snif_call`; the validator of repoman-snif's tests, scanning its input for TODO) with fuel
//! metering on, and print the median of each step in microseconds as one JSON line.

#![cfg_attr(not(any(feature = "wasmi", feature = "wasmtime")), allow(dead_code))]

use std::time::Instant;

const GUEST: &str = include_str!("../../../../crates/repoman-snif/tests/guests/validator.wat");
const PRELUDE: &str = include_str!("../../../../crates/repoman-snif/tests/guests/prelude.wat");
const FUEL: u64 = 10_000_000;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn time<T>(n: usize, mut f: impl FnMut() -> T) -> f64 {
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        std::hint::black_box(f());
        v.push(t.elapsed().as_secs_f64() * 1e6);
    }
    median(v)
}

fn input() -> Vec<u8> {
    let mut s = String::from(r#"{"contract":{"name":"orders","version":"1.2.0","schema":{"type":"object"}},"repo":"api","role":"exporter","files":["#);
    for i in 0..8 {
        s.push_str(&format!(r#"{{"path":"src/f{i}.py","content":"{}"}},"#, "x = 1\n".repeat(40)));
    }
    s.pop();
    s.push_str("]}");
    s.into_bytes()
}

#[cfg(feature = "wasmi")]
mod engine {
    use wasmi::{Config, Engine, Linker, Memory, Module, Store};

    pub const NAME: &str = "wasmi";

    pub fn engine() -> Engine {
        let mut c = Config::default();
        c.consume_fuel(true);
        Engine::new(&c)
    }

    pub fn compile(e: &Engine, wasm: &[u8]) -> Module {
        Module::new(e, wasm).unwrap()
    }

    pub fn call(e: &Engine, m: &Module, input: &[u8], only_instantiate: bool) -> usize {
        let mut store = Store::new(e, ());
        store.set_fuel(super::FUEL).unwrap();
        let inst = Linker::<()>::new(e).instantiate_and_start(&mut store, m).unwrap();
        if only_instantiate {
            return 0;
        }
        let mem: Memory = inst.get_memory(&store, "memory").unwrap();
        let alloc = inst.get_typed_func::<i32, i32>(&store, "snif_alloc").unwrap();
        let run = inst.get_typed_func::<(i32, i32), i64>(&store, "snif_call").unwrap();
        let p = alloc.call(&mut store, input.len() as i32).unwrap();
        mem.write(&mut store, p as usize, input).unwrap();
        let r = run.call(&mut store, (p, input.len() as i32)).unwrap() as u64;
        let (op, ol) = ((r >> 32) as usize, (r & 0xffff_ffff) as usize);
        let mut out = vec![0; ol];
        mem.read(&store, op, &mut out).unwrap();
        out.len()
    }

    pub fn precompiled(_e: &Engine, _m: &Module) -> Option<(usize, f64)> {
        None // wasmi has no native code to store
    }
}

#[cfg(feature = "wasmtime")]
mod engine {
    use wasmtime::{Config, Engine, Linker, Memory, Module, Store};

    pub const NAME: &str = "wasmtime";

    pub fn engine() -> Engine {
        let mut c = Config::new();
        c.consume_fuel(true);
        Engine::new(&c).unwrap()
    }

    pub fn compile(e: &Engine, wasm: &[u8]) -> Module {
        Module::new(e, wasm).unwrap()
    }

    pub fn call(e: &Engine, m: &Module, input: &[u8], only_instantiate: bool) -> usize {
        let mut store = Store::new(e, ());
        store.set_fuel(super::FUEL).unwrap();
        let inst = Linker::<()>::new(e).instantiate(&mut store, m).unwrap();
        if only_instantiate {
            return 0;
        }
        let mem: Memory = inst.get_memory(&mut store, "memory").unwrap();
        let alloc = inst.get_typed_func::<i32, i32>(&mut store, "snif_alloc").unwrap();
        let run = inst.get_typed_func::<(i32, i32), i64>(&mut store, "snif_call").unwrap();
        let p = alloc.call(&mut store, input.len() as i32).unwrap();
        mem.write(&mut store, p as usize, input).unwrap();
        let r = run.call(&mut store, (p, input.len() as i32)).unwrap() as u64;
        let (op, ol) = ((r >> 32) as usize, (r & 0xffff_ffff) as usize);
        let mut out = vec![0; ol];
        mem.read(&store, op, &mut out).unwrap();
        out.len()
    }

    /// Serialized size and the median time to load it back (the precompiled-cache path).
    pub fn precompiled(e: &Engine, m: &Module) -> Option<(usize, f64)> {
        let bytes = m.serialize().unwrap();
        let t = super::time(50, || unsafe { Module::deserialize(e, &bytes).unwrap() });
        Some((bytes.len(), t))
    }
}

#[cfg(any(feature = "wasmi", feature = "wasmtime"))]
fn main() {
    let wasm = wat::parse_str(GUEST.replace(";;@prelude", PRELUDE)).unwrap();
    let input = input();
    let t = Instant::now();
    let e = engine::engine();
    let engine_us = t.elapsed().as_secs_f64() * 1e6;
    let first = Instant::now();
    let m = engine::compile(&e, &wasm);
    let n = engine::call(&e, &m, &input, false);
    let first_us = first.elapsed().as_secs_f64() * 1e6;
    assert!(n > 0, "the guest returned nothing");
    let compile = time(50, || engine::compile(&e, &wasm));
    let inst = time(200, || engine::call(&e, &m, &input, true));
    let warm = time(500, || engine::call(&e, &m, &input, false));
    let pre = engine::precompiled(&e, &m);
    println!(
        "{{\"engine\":\"{}\",\"module_bytes\":{},\"input_bytes\":{},\"engine_new_us\":{engine_us:.1},\"first_call_with_compile_us\":{first_us:.1},\"compile_us\":{compile:.1},\"instantiate_us\":{inst:.1},\"warm_call_us\":{warm:.1},\"precompiled_bytes\":{},\"load_precompiled_us\":{}}}",
        engine::NAME,
        wasm.len(),
        input.len(),
        pre.map_or("null".into(), |p| p.0.to_string()),
        pre.map_or("null".into(), |p| format!("{:.1}", p.1)),
    );
}

#[cfg(not(any(feature = "wasmi", feature = "wasmtime")))]
fn main() {
    // The baseline build (wat only): its build time is subtracted from each engine's.
    let wasm = wat::parse_str(GUEST.replace(";;@prelude", PRELUDE)).unwrap();
    println!("{{\"engine\":\"none\",\"module_bytes\":{}}}", wasm.len());
}
