//! Parallel gzip, the way pigz does it: the input is cut into blocks that
//! are compressed at the same time on the blocking pool, each primed with
//! the last 32 KiB of the block before it (so the ratio stays gzip's) and
//! ended with a sync flush, so the blocks join into one deflate stream. The
//! result is one ordinary gzip member (`gzip -t` accepts it) whose CRC is
//! combined from the blocks'.
//!
//! Memory is bounded: at most `workers` blocks are being compressed while
//! one more is read, and a few compressed blocks wait for the reader of the
//! output. A failing input fails the output (it never ends early as if
//! complete).
//!
//! Written here rather than taken from a crate: the crates that do this
//! (gzp) bring their own thread pools and synchronous writers, where a
//! download is an async stream on tokio's blocking pool.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use flate2::{Compress, Compression, Crc, FlushCompress, Status};
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};
use tokio::sync::mpsc;

/// Input per block (pigz uses 128 KiB; a larger block spends less on its
/// dictionary and start, measured 15% faster at 1 MiB than at 256 KiB).
const BLOCK: usize = 1024 * 1024;
/// Deflate's window: what a block may refer back to.
const WINDOW: usize = 32 * 1024;
/// Compressed blocks waiting for the reader of the output.
const QUEUED: usize = 4;

/// gzip's header: deflate, no name, no time, unknown OS.
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

/// `input` as a gzip stream compressed at `level` by up to `workers`
/// blocks at a time. Spawns its work on the current tokio runtime.
pub fn gzip<R>(input: R, level: u32, workers: usize) -> ParallelGzip
where
    R: AsyncRead + Send + Unpin + 'static,
{
    let (tx, rx) = mpsc::channel(QUEUED);
    // The input is read ahead by its own task, one block at a time, while
    // the blocks before it compress.
    let (blocks_tx, blocks) = mpsc::channel(1);
    let reader = tokio::spawn(read_blocks(input, blocks_tx));
    let producer = tokio::spawn(produce(blocks, level, workers.max(1), tx));
    ParallelGzip {
        rx,
        current: Vec::new(),
        pos: 0,
        done: false,
        tasks: [reader.abort_handle(), producer.abort_handle()],
    }
}

enum Piece {
    Data(Vec<u8>),
    Failed(io::Error),
    /// The trailer has been sent: the stream is complete.
    End,
}

/// A compressed block and the CRC of its input.
struct Block {
    data: Vec<u8>,
    crc: Crc,
}

async fn produce(
    blocks: mpsc::Receiver<io::Result<Vec<u8>>>,
    level: u32,
    workers: usize,
    tx: mpsc::Sender<Piece>,
) {
    if let Err(e) = pipeline(blocks, level, workers, &tx).await {
        // The reader may be gone (the client left); nothing to tell then.
        let _ = tx.send(Piece::Failed(e)).await;
    }
}

/// Sends the input in blocks of [`BLOCK`] bytes (the last one shorter,
/// maybe empty), or the error that ended it.
async fn read_blocks<R: AsyncRead + Unpin>(mut input: R, tx: mpsc::Sender<io::Result<Vec<u8>>>) {
    loop {
        let block = read_block(&mut input).await;
        let last = block.as_ref().map_or(true, |b| b.len() < BLOCK);
        if tx.send(block).await.is_err() || last {
            return;
        }
    }
}

async fn pipeline(
    mut blocks: mpsc::Receiver<io::Result<Vec<u8>>>,
    level: u32,
    workers: usize,
    tx: &mpsc::Sender<Piece>,
) -> io::Result<()> {
    let gone = || io::Error::new(io::ErrorKind::BrokenPipe, "the download's reader is gone");
    let send = |piece| async move { tx.send(piece).await.map_err(|_| gone()) };
    send(Piece::Data(HEADER.to_vec())).await?;
    // Compressors are reused (a new one clears its tables: costly per block).
    let pool: Arc<Mutex<Vec<Compress>>> = Arc::default();
    let mut in_flight: VecDeque<tokio::task::JoinHandle<io::Result<Block>>> = VecDeque::new();
    let mut crc = Crc::new();
    let mut window: Vec<u8> = Vec::new();
    let mut ended = false;
    // While the oldest block compresses, the next ones are taken and
    // started (one more than there are workers, so none waits for input).
    loop {
        let room = in_flight.len() <= workers;
        tokio::select! {
            biased;
            done = async { in_flight.front_mut().expect("a block in flight").await },
                if !in_flight.is_empty() =>
            {
                in_flight.pop_front();
                let block = done.map_err(|e| io::Error::other(format!("compressing a block: {e}")))??;
                crc.combine(&block.crc);
                send(Piece::Data(block.data)).await?;
            }
            block = blocks.recv(), if room && !ended => {
                let Some(block) = block else {
                    return Err(io::Error::other("the input's reader stopped"));
                };
                let block = block?;
                ended = block.len() < BLOCK;
                if !block.is_empty() {
                    let dictionary = std::mem::take(&mut window);
                    window = block[block.len().saturating_sub(WINDOW)..].to_vec();
                    let pool = pool.clone();
                    in_flight.push_back(tokio::task::spawn_blocking(move || {
                        compress_block(&pool, &dictionary, &block, level)
                    }));
                }
            }
            else => break,
        }
    }
    let mut end = finish_stream(level)?;
    end.extend_from_slice(&crc.sum().to_le_bytes());
    end.extend_from_slice(&crc.amount().to_le_bytes());
    send(Piece::Data(end)).await?;
    send(Piece::End).await
}

/// Reads up to [`BLOCK`] bytes; fewer only at the end of the input.
async fn read_block<R: AsyncRead + Unpin>(input: &mut R) -> io::Result<Vec<u8>> {
    let mut block = Vec::with_capacity(BLOCK);
    while block.len() < BLOCK {
        let want = BLOCK - block.len();
        if input.take(want as u64).read_buf(&mut block).await? == 0 {
            break;
        }
    }
    Ok(block)
}

/// Raw deflate of `input`, primed with `dictionary`, ended by a sync flush
/// (an empty stored block: byte-aligned, not final).
fn compress_block(
    pool: &Mutex<Vec<Compress>>,
    dictionary: &[u8],
    input: &[u8],
    level: u32,
) -> io::Result<Block> {
    let reused = pool.lock().unwrap_or_else(|p| p.into_inner()).pop();
    let mut c = match reused {
        Some(mut c) => {
            c.reset();
            c
        }
        None => Compress::new(Compression::new(level), false),
    };
    if !dictionary.is_empty() {
        c.set_dictionary(dictionary).map_err(io::Error::other)?;
    }
    let mut out = Vec::with_capacity(input.len() / 2 + 1024);
    loop {
        if out.capacity() - out.len() < 1024 {
            out.reserve(out.capacity().max(16 * 1024));
        }
        let from = usize::try_from(c.total_in()).map_err(io::Error::other)?;
        c.compress_vec(&input[from..], &mut out, FlushCompress::Sync)
            .map_err(io::Error::other)?;
        // A sync flush is complete once all input is taken and the output
        // was not filled up.
        if c.total_in() as usize == input.len() && out.len() < out.capacity() {
            break;
        }
    }
    pool.lock().unwrap_or_else(|p| p.into_inner()).push(c);
    let mut crc = Crc::new();
    crc.update(input);
    Ok(Block { data: out, crc })
}

/// The final, empty deflate block that ends the stream.
fn finish_stream(level: u32) -> io::Result<Vec<u8>> {
    let mut c = Compress::new(Compression::new(level), false);
    let mut out = Vec::with_capacity(64);
    loop {
        match c
            .compress_vec(&[], &mut out, FlushCompress::Finish)
            .map_err(io::Error::other)?
        {
            Status::StreamEnd => return Ok(out),
            Status::Ok | Status::BufError => out.reserve(64),
        }
    }
}

/// The gzip stream, read in order.
pub struct ParallelGzip {
    rx: mpsc::Receiver<Piece>,
    current: Vec<u8>,
    pos: usize,
    done: bool,
    /// The reading and compressing tasks: a reader that leaves ends them
    /// at once (and with them the input, so restic is stopped), not at
    /// their next block; blocks already compressing finish on their own.
    tasks: [tokio::task::AbortHandle; 2],
}

impl Drop for ParallelGzip {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl AsyncRead for ParallelGzip {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if this.pos < this.current.len() {
                let n = buf.remaining().min(this.current.len() - this.pos);
                buf.put_slice(&this.current[this.pos..this.pos + n]);
                this.pos += n;
                return Poll::Ready(Ok(()));
            }
            if this.done {
                return Poll::Ready(Ok(()));
            }
            match ready!(this.rx.poll_recv(cx)) {
                Some(Piece::Data(data)) => {
                    this.current = data;
                    this.pos = 0;
                }
                Some(Piece::Failed(e)) => return Poll::Ready(Err(e)),
                Some(Piece::End) => this.done = true,
                // The producer ended without its trailer (it panicked):
                // never an early end that looks complete.
                None => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the compressor stopped before the end",
                    )));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    async fn compress(data: Vec<u8>, workers: usize) -> Vec<u8> {
        let mut out = Vec::new();
        gzip(std::io::Cursor::new(data), 6, workers)
            .read_to_end(&mut out)
            .await
            .unwrap();
        out
    }

    fn gunzip(gz: &[u8]) -> Vec<u8> {
        // One member only: a plain (not multi-member) decoder reads it all.
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(gz)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    /// World-like data: random stretches and repeated ones.
    fn sample(len: usize) -> Vec<u8> {
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let mut data = Vec::with_capacity(len);
        while data.len() < len {
            for _ in 0..512 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                data.extend_from_slice(&x.to_le_bytes()[..3]);
            }
            data.extend_from_slice(&b"minecraft:stone ".repeat(200));
        }
        data.truncate(len);
        data
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn round_trips_at_every_size_around_the_block_edges() {
        for len in [
            0,
            1,
            WINDOW - 1,
            BLOCK - 1,
            BLOCK,
            BLOCK + 1,
            3 * BLOCK,
            5 * BLOCK + 77,
        ] {
            let data = sample(len);
            for workers in [1, 2, 4] {
                let gz = compress(data.clone(), workers).await;
                assert_eq!(&gz[..3], &[0x1f, 0x8b, 8]);
                assert!(gunzip(&gz) == data, "len {len}, {workers} workers");
            }
        }
    }

    /// (The system's own `gzip` and `tar` read these streams in the
    /// download tests; the agent's code never starts programs.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_ratio_is_gzips() {
        let data = sample(4 * 1024 * 1024);
        let gz = compress(data.clone(), 2).await;
        assert!(gunzip(&gz) == data);
        // Within 2% of one deflate stream over the whole input.
        let mut one = flate2::write::GzEncoder::new(Vec::new(), Compression::new(6));
        std::io::Write::write_all(&mut one, &data).unwrap();
        let one = one.finish().unwrap();
        assert!(
            (gz.len() as f64) < one.len() as f64 * 1.02,
            "{} vs {}",
            gz.len(),
            one.len()
        );
    }

    /// Fails after `ok` bytes.
    struct Broken {
        ok: usize,
    }

    impl AsyncRead for Broken {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            if self.ok == 0 {
                return Poll::Ready(Err(io::Error::other("restic died")));
            }
            let n = self.ok.min(buf.remaining()).min(10_000);
            buf.put_slice(&vec![7u8; n]);
            self.ok -= n;
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_input_fails_the_stream_instead_of_ending_it() {
        let mut out = Vec::new();
        let e = gzip(Broken { ok: 3 * BLOCK + 5 }, 6, 2)
            .read_to_end(&mut out)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("restic died"), "{e}");
    }

    /// Endless input that counts what was read of it (`usize::MAX` once
    /// dropped).
    struct Endless(std::sync::Arc<std::sync::atomic::AtomicUsize>);

    impl Drop for Endless {
        fn drop(&mut self) {
            self.0
                .store(usize::MAX, std::sync::atomic::Ordering::SeqCst);
        }
    }

    impl AsyncRead for Endless {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let n = buf.remaining().min(64 * 1024);
            buf.put_slice(&sample(n));
            self.0.fetch_add(n, std::sync::atomic::Ordering::SeqCst);
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_slow_reader_holds_the_input_back_and_one_that_leaves_stops_it() {
        use std::sync::atomic::Ordering::SeqCst;
        let read = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut z = gzip(Endless(read.clone()), 6, 2);
        let mut first = [0u8; 100];
        z.read_exact(&mut first).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        // A bounded number of blocks: queued for the reader (and one being
        // handed over), compressing (workers + 1), one waiting to be taken
        // and one read meanwhile.
        let held = read.load(SeqCst);
        let workers = 2;
        assert!(
            held <= (QUEUED + 1 + (workers + 1) + 2) * BLOCK,
            "{held} bytes read ahead"
        );
        drop(z);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert_eq!(
            read.load(SeqCst),
            usize::MAX,
            "the input (restic) is kept after the reader left"
        );
    }
}
