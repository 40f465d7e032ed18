//! Restricted WASI (preview 1) for guests built for it, such as Go's `wasip1`
//! reactors: wasmtime-wasi's implementation with nothing granted. No preopened
//! directories (so no files), no environment variables, no arguments but the module
//! name, no sockets, an empty stdin; clocks and randomness are allowed. Standard
//! output and error are captured per evaluation, bounded ([`OUTPUT_LIMIT`] bytes per
//! stream, the rest dropped and counted, never blocking the guest), and logged with
//! the policy's name. `proc_exit` ends the evaluation (wasmtime-wasi raises
//! [`I32Exit`]), which the engine reports as a policy error.
//!
//! `poll_oneoff` is replaced: wasmtime-wasi's would sleep for a clock subscription
//! inside a host call, where the epoch deadline cannot interrupt it. Ours reports
//! every subscription as ready at once, so a guest that sleeps spins on the clock
//! instead and its time limit ends it like any other loop.

use super::store::StoreState;
use bytes::Bytes;
use std::sync::{Arc, Mutex, MutexGuard};
use wasmtime::{Caller, Extern, Linker};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

pub use wasmtime_wasi::I32Exit;

/// The import module of WASI preview 1.
pub const MODULE: &str = "wasi_snapshot_preview1";

/// Bytes of standard output (and, separately, of standard error) kept per
/// evaluation; the rest is dropped and counted.
pub const OUTPUT_LIMIT: usize = 16 << 10;

/// WASI errno values this module returns itself.
const ERRNO_SUCCESS: i32 = 0;
const ERRNO_FAULT: i32 = 21;
const ERRNO_INVAL: i32 = 28;

/// Sizes of `subscription` and `event` in WASI preview 1's layout.
const SUBSCRIPTION_SIZE: usize = 48;
const EVENT_SIZE: usize = 32;

/// One evaluation's WASI state: the context and what the guest wrote.
pub struct WasiSandbox {
    pub ctx: WasiP1Ctx,
    pub stdout: Captured,
    pub stderr: Captured,
}

impl WasiSandbox {
    /// A context that grants nothing but `program` as the only argument, clocks
    /// and randomness, with both output streams captured.
    pub fn new(program: &str) -> WasiSandbox {
        let stdout = Captured::default();
        let stderr = Captured::default();
        let ctx = WasiCtxBuilder::new()
            .arg(program)
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build_p1();
        WasiSandbox {
            ctx,
            stdout,
            stderr,
        }
    }
}

/// Adds WASI preview 1 to the linker (for `StoreState::wasi`) with the
/// non-blocking `poll_oneoff`.
pub fn define(linker: &mut Linker<StoreState>) -> wasmtime::Result<()> {
    wasmtime_wasi::p1::add_to_linker_sync(linker, |state: &mut StoreState| state.wasi_ctx())?;
    linker.allow_shadowing(true);
    linker.func_wrap(MODULE, "poll_oneoff", poll_oneoff)?;
    linker.allow_shadowing(false);
    Ok(())
}

/// Every subscription fires at once (see the module's comment).
fn poll_oneoff(
    mut caller: Caller<'_, StoreState>,
    subscriptions: i32,
    events: i32,
    count: i32,
    written: i32,
) -> i32 {
    let Some(Extern::Memory(memory)) = caller.get_export("memory") else {
        return ERRNO_FAULT;
    };
    let Ok(count) = usize::try_from(count) else {
        return ERRNO_INVAL;
    };
    if count == 0 {
        return ERRNO_INVAL;
    }
    let data = memory.data_mut(&mut caller);
    let at = |offset: i32, len: usize| {
        let start = offset as u32 as usize;
        start
            .checked_add(len)
            .filter(|end| *end <= data.len())
            .map(|end| start..end)
    };
    let (Some(subs), Some(out), Some(nout)) = (
        at(subscriptions, count * SUBSCRIPTION_SIZE),
        at(events, count * EVENT_SIZE),
        at(written, 4),
    ) else {
        return ERRNO_FAULT;
    };
    for i in 0..count {
        let sub = subs.start + i * SUBSCRIPTION_SIZE;
        let mut event = [0u8; EVENT_SIZE];
        // userdata (u64), error (u16) = 0, type (u8) = the subscription's tag.
        event[..8].copy_from_slice(&data[sub..sub + 8]);
        event[10] = data[sub + 8];
        let slot = out.start + i * EVENT_SIZE;
        data[slot..slot + EVENT_SIZE].copy_from_slice(&event);
    }
    data[nout].copy_from_slice(&(count as u32).to_le_bytes());
    ERRNO_SUCCESS
}

/// One captured output stream: its first [`OUTPUT_LIMIT`] bytes and how many more
/// the guest wrote.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<CapturedBytes>>);

#[derive(Default)]
struct CapturedBytes {
    kept: Vec<u8>,
    dropped: usize,
}

impl Captured {
    fn lock(&self) -> MutexGuard<'_, CapturedBytes> {
        // Appending bytes cannot leave the buffer inconsistent.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn append(&self, bytes: &[u8]) {
        let mut captured = self.lock();
        let room = OUTPUT_LIMIT.saturating_sub(captured.kept.len());
        let take = bytes.len().min(room);
        captured.kept.extend_from_slice(&bytes[..take]);
        captured.dropped += bytes.len() - take;
    }

    /// What was kept (lossy UTF-8) and how many bytes were dropped.
    pub fn text(&self) -> (String, usize) {
        let captured = self.lock();
        (
            String::from_utf8_lossy(&captured.kept).into_owned(),
            captured.dropped,
        )
    }

    /// True when the guest wrote nothing.
    pub fn is_empty(&self) -> bool {
        let captured = self.lock();
        captured.kept.is_empty() && captured.dropped == 0
    }
}

impl IsTerminal for Captured {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Captured {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for Captured {
    async fn ready(&mut self) {}
}

impl OutputStream for Captured {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.append(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        // Always room: what does not fit is dropped, so a guest never waits.
        Ok(1 << 20)
    }
}

impl tokio::io::AsyncWrite for Captured {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.append(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_kept_up_to_the_limit_and_the_rest_counted() {
        let captured = Captured::default();
        assert!(captured.is_empty());
        captured.append(b"hello ");
        captured.append(&vec![b'x'; OUTPUT_LIMIT]);
        let (text, dropped) = captured.text();
        assert_eq!(text.len(), OUTPUT_LIMIT);
        assert!(text.starts_with("hello xxx"));
        assert_eq!(dropped, 6);
        assert!(!captured.is_empty());
    }
}
