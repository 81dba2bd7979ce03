//! Parallel gzip, the way pigz does it. The input is cut into fixed-size blocks; each block is deflated on a worker
//! thread as raw deflate, primed with the previous block's last 32 KiB as dictionary and ended with a sync flush (an
//! empty stored block, byte-aligned; the last block ends with the final block instead), and the pieces are written in
//! input order behind one gzip header and one CRC-32/ISIZE trailer. The output is therefore ONE gzip member (any
//! gunzip, `tar -xzf`, Go's and Python's readers), and its bytes depend only on the block size and the level, never
//! on the number of threads or on timing: builds stay bit-for-bit reproducible on machines with any core count.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;

const DICT: usize = 32 * 1024;

struct Job {
    index: u64,
    dict: Vec<u8>,
    data: Vec<u8>,
    last: bool,
}

fn deflate_block(level: u32, dict: &[u8], data: &[u8], last: bool) -> io::Result<Vec<u8>> {
    use flate2::{Compress, Compression, FlushCompress, Status};
    let mut c = Compress::new(Compression::new(level), false);
    if !dict.is_empty() {
        c.set_dictionary(dict).map_err(io::Error::other)?;
    }
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let mut out = Vec::with_capacity(data.len() / 2 + 1024);
    loop {
        if out.capacity() - out.len() < 64 * 1024 {
            out.reserve(256 * 1024);
        }
        let consumed = c.total_in() as usize;
        let before = out.len();
        let status = c
            .compress_vec(&data[consumed..], &mut out, flush)
            .map_err(io::Error::other)?;
        let done_input = c.total_in() as usize == data.len();
        match status {
            Status::StreamEnd => break,
            _ if !last && done_input && out.len() - before < out.capacity() - before => break,
            _ => {}
        }
    }
    Ok(out)
}

/// Uncompressed bytes per block (pigz uses 128 KiB; 1 MiB has less per-block overhead and the same ratio here).
pub const BLOCK: usize = 1 << 20;

/// A gzip writer compressing on `threads` worker threads; call [`ParallelGz::finish`] to get the inner writer back.
pub struct ParallelGz<W: Write> {
    out: W,
    block: usize,
    buf: Vec<u8>,
    dict: Vec<u8>,
    crc: flate2::Crc,
    next_index: u64,
    next_write: u64,
    in_flight: usize,
    max_in_flight: usize,
    done: BTreeMap<u64, Vec<u8>>,
    jobs: Option<mpsc::Sender<Job>>,
    results: mpsc::Receiver<(u64, io::Result<Vec<u8>>)>,
    workers: Vec<JoinHandle<()>>,
}

impl<W: Write> ParallelGz<W> {
    pub fn new(mut out: W, level: u32, block: usize, threads: usize) -> io::Result<Self> {
        // The same header flate2's GzBuilder::new().mtime(0) writes: no name, no time, XFL 0, OS 255.
        out.write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff])?;
        let (job_tx, job_rx) = mpsc::channel::<Job>();
        let job_rx = Arc::new(Mutex::new(job_rx));
        let (res_tx, res_rx) = mpsc::channel();
        let workers = (0..threads.max(1))
            .map(|_| {
                let rx = Arc::clone(&job_rx);
                let tx = res_tx.clone();
                std::thread::spawn(move || {
                    loop {
                        let job = match rx
                            .lock()
                            .map_err(|_| ())
                            .and_then(|r| r.recv().map_err(|_| ()))
                        {
                            Ok(j) => j,
                            Err(_) => return,
                        };
                        let r = deflate_block(level, &job.dict, &job.data, job.last);
                        if tx.send((job.index, r)).is_err() {
                            return;
                        }
                    }
                })
            })
            .collect();
        Ok(ParallelGz {
            out,
            block,
            buf: Vec::with_capacity(block),
            dict: Vec::new(),
            crc: flate2::Crc::new(),
            next_index: 0,
            next_write: 0,
            in_flight: 0,
            max_in_flight: 2 * threads.max(1),
            done: BTreeMap::new(),
            jobs: Some(job_tx),
            results: res_rx,
            workers,
        })
    }

    fn collect_one(&mut self) -> io::Result<()> {
        let (i, r) = self
            .results
            .recv()
            .map_err(|_| io::Error::other("compression worker died"))?;
        self.in_flight -= 1;
        self.done.insert(i, r?);
        while let Some(bytes) = self.done.remove(&self.next_write) {
            self.out.write_all(&bytes)?;
            self.next_write += 1;
        }
        Ok(())
    }

    fn submit(&mut self, last: bool) -> io::Result<()> {
        while self.in_flight >= self.max_in_flight {
            self.collect_one()?;
        }
        let data = std::mem::replace(&mut self.buf, Vec::with_capacity(self.block));
        self.crc.update(&data);
        let dict = std::mem::take(&mut self.dict);
        self.dict = data[data.len().saturating_sub(DICT)..].to_vec();
        let job = Job {
            index: self.next_index,
            dict,
            data,
            last,
        };
        self.next_index += 1;
        self.in_flight += 1;
        self.jobs
            .as_ref()
            .expect("not finished")
            .send(job)
            .map_err(|_| io::Error::other("compression worker died"))
    }

    pub fn finish(mut self) -> io::Result<W> {
        self.submit(true)?;
        while self.in_flight > 0 {
            self.collect_one()?;
        }
        self.jobs = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        let crc = self.crc.sum();
        let size = self.crc.amount();
        self.out.write_all(&crc.to_le_bytes())?;
        self.out.write_all(&size.to_le_bytes())?;
        Ok(self.out)
    }
}

impl<W: Write> Write for ParallelGz<W> {
    fn write(&mut self, mut data: &[u8]) -> io::Result<usize> {
        let n = data.len();
        while !data.is_empty() {
            let take = (self.block - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() == self.block {
                self.submit(false)?;
            }
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// Compressible but not trivial input: a repeating text with a counter, plus a pseudo-random tail.
    fn input(len: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(len);
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let mut i = 0u64;
        while v.len() < len {
            if i.is_multiple_of(7) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                v.extend_from_slice(&x.to_le_bytes());
            } else {
                v.extend_from_slice(format!("line {i} of the layer\n").as_bytes());
            }
            i += 1;
        }
        v.truncate(len);
        v
    }

    fn compress(data: &[u8], block: usize, threads: usize) -> Vec<u8> {
        let mut gz = ParallelGz::new(Vec::new(), 6, block, threads).expect("new");
        for chunk in data.chunks(10_007) {
            gz.write_all(chunk).expect("write");
        }
        gz.finish().expect("finish")
    }

    #[test]
    fn output_is_one_gzip_member_and_the_same_for_any_thread_count() {
        let data = input(700_000);
        let one = compress(&data, 64 * 1024, 1);
        for threads in [2, 4] {
            assert_eq!(
                compress(&data, 64 * 1024, threads),
                one,
                "{threads} threads"
            );
        }
        // A single-member decoder reads all of it back.
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&one[..])
            .read_to_end(&mut back)
            .expect("gunzip");
        assert_eq!(back, data);
        assert!(one.len() < data.len() / 2, "it compresses");
    }

    #[test]
    fn empty_and_tiny_inputs_round_trip() {
        for data in [
            Vec::new(),
            b"x".to_vec(),
            input(64 * 1024),
            input(64 * 1024 + 1),
        ] {
            let gz = compress(&data, 64 * 1024, 2);
            let mut back = Vec::new();
            flate2::read::GzDecoder::new(&gz[..])
                .read_to_end(&mut back)
                .expect("gunzip");
            assert_eq!(back, data);
        }
    }
}
