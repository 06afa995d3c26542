//! Unsharded scales: one stored object per chunk, `<scale key>/<x0>-<x1>_<y0>-<y1>_<z0>-<z1>`.
//! Reads fetch each chunk with one request (many in flight); writes encode and store each
//! chunk whole (edge chunks of a box off the grid read, merged and rewritten with
//! `non_aligned_writes`); deletes remove the chunk objects of an aligned box.

use super::{copy_box, ChunkSource, EachPayload, Payload, ScaleCtx};
use crate::codec::{compression, OutView};
use crate::error::Result;
use crate::format::grid::chunk_key;
use crate::format::{Bbox, ContentEncoding};
use crate::store::{GetOptions, Got, OnLength};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// The chunk files of a scale.
pub(crate) struct ChunkFiles;

impl ChunkSource for ChunkFiles {
    /// Each chunk reserves a request slot of the engine's budget before its request is sent
    /// (the mean body so far), takes its body's bytes when the `Content-Length` arrives, before
    /// the body is read, and holds them until it is decoded: the budget, not the thread count,
    /// decides how many requests are out at once.
    fn fetch(&self, ctx: &ScaleCtx, cells: &[[i64; 3]], each: &EachPayload<'_>) -> Result<()> {
        let Some(&first) = cells.first() else { return Ok(()) };
        let estimate = ctx.body_estimate(&ctx.grid.cell_bbox(first));
        let remote = ctx.store.tells_length();
        ctx.engine.run_fetches(cells, estimate, remote, |i, &cell, decodes| {
            let cell_box = ctx.grid.cell_bbox(cell);
            let key = chunk_key(&ctx.scale.key, &cell_box);
            let url = ctx.store.url(&key);
            let held = Mutex::new(ctx.engine.reserve(|| ctx.body_estimate(&cell_box)));
            let told = AtomicBool::new(false);
            // The body's buffer is taken from the pool only once its bytes are granted: a
            // request in its round trip holds no memory.
            let on_length = |n: u64, buf: &mut Vec<u8>| {
                told.store(true, Ordering::Relaxed);
                ctx.note_body(n);
                // What the budget holds for the body is the buffer it is read into.
                let bytes = ctx.buffer_len(&cell_box, n as usize);
                held.lock().unwrap_or_else(|p| p.into_inner()).resize(bytes);
                if buf.capacity() == 0 {
                    *buf = ctx.engine.take_buffer();
                    buf.reserve(bytes);
                }
            };
            let opts = GetOptions {
                max_len: Some(ctx.stored_limit(cell_box) as u64),
                on_length: Some(OnLength(&on_length)),
                ..GetOptions::default()
            };
            let mut body = if remote { Vec::new() } else { ctx.engine.take_buffer() };
            let got = ctx.store.get_with(&key, &opts, &mut body);
            let mut held = held.into_inner().unwrap_or_else(|p| p.into_inner());
            if !told.load(Ordering::Relaxed) && !body.is_empty() {
                ctx.note_body(body.len() as u64);
                held.cover(body.len());
            }
            let encoding = match got {
                Ok(Got::Found { encoding, .. }) => Some(encoding),
                Ok(Got::Missing | Got::Stale) => None,
                Err(e) => {
                    ctx.engine.give_buffer(body);
                    return Err(e);
                }
            };
            // Decoded where `decodes` says, holding its body's bytes until then.
            decodes.run(i, move || {
                // cloud-volume treats zero-byte chunks as missing.
                let data = encoding.filter(|_| !body.is_empty()).map(|_| &body[..]);
                let r = each(i, Payload { data, encoding: encoding.unwrap_or(ContentEncoding::Identity), url: &url });
                ctx.engine.give_buffer(body);
                drop(held);
                r
            })
        })
    }

    fn exists(&self, ctx: &ScaleCtx, cells: &[[i64; 3]]) -> Result<Vec<bool>> {
        ctx.engine.map(cells, |_, &c| ctx.store.exists(&chunk_key(&ctx.scale.key, &ctx.grid.cell_bbox(c))))
    }

    fn write(&self, ctx: &ScaleCtx, region: &Bbox, buf: &[u8]) -> Result<()> {
        if !ctx.grid.is_aligned(region) && !ctx.opts.write.non_aligned_writes {
            return Err(ctx.misaligned(region, "write", false));
        }
        let (nc, item) = (ctx.channels, ctx.dtype.size());
        let cells = ctx.grid.cells_in(region);
        ctx.engine.run(&cells, |_, &cell| {
            let cell_box = ctx.grid.cell_bbox(cell);
            let Some(part) = cell_box.intersection(region) else { return Ok(()) };
            let key = chunk_key(&ctx.scale.key, &cell_box);
            let url = ctx.store.url(&key);
            let mut chunk = vec![0u8; ctx.chunk_len(&cell_box)];
            if part != cell_box {
                // A partial chunk: start from what is stored (background where nothing is).
                let view = OutView::new(&mut chunk, cell_box, nc, item);
                self.fetch(ctx, &[cell], &|_, payload| match payload.data {
                    Some(_) => ctx.place(cell_box, &cell_box, payload, &view),
                    None => {
                        // SAFETY: the view is this task's own buffer.
                        unsafe { view.fill(&cell_box, &ctx.background) };
                        Ok(())
                    }
                })?;
            }
            copy_box(buf, region, &mut chunk, &cell_box, &part, nc, item);
            if ctx.opts.write.delete_black_uploads && chunk.chunks_exact(item).all(|e| e == &ctx.background[..]) {
                return ctx.store.delete(&key);
            }
            let bytes = ctx.encode_chunk(&cell_box, &chunk, &url)?;
            // The decoded chunk is not needed while the (possibly slow) PUT runs.
            drop(chunk);
            let encoding = ctx.write_encoding();
            let stored = compression::compress(bytes, encoding, ctx.opts.write.compress_level, &url)?;
            ctx.store.put(&key, &stored, encoding, ctx.content_type())
        })
    }

    fn delete(&self, ctx: &ScaleCtx, region: &Bbox) -> Result<()> {
        if !ctx.grid.is_aligned(region) {
            return Err(ctx.misaligned(region, "delete", false));
        }
        let cells = ctx.grid.cells_in(region);
        ctx.engine.run(&cells, |_, &c| ctx.store.delete(&chunk_key(&ctx.scale.key, &ctx.grid.cell_bbox(c))))
    }
}
