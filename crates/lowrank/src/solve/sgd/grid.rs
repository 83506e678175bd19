//! The block grid of the parallel schedule.
//!
//! Rows and columns are relabelled by random permutations (drawn from the
//! seed), which spreads heavy users and popular items evenly over the blocks
//! and is the "shuffled order" of the run. Row block `b` holds the new row ids
//! `[ceil(b m / g), ceil((b + 1) m / g))`, the same for columns. Inside a block
//! the entries are sorted by (new row, new column) and grouped into runs of
//! one row, so the row's factors stay in L1 across its run and the block's
//! column factors (`n / g` rows) stay in L2.
//!
//! Memory: 8 bytes per entry ([`Entry`]) + 8 bytes per (row, block) run,
//! plus 4 bytes per entry while building.

use rayon::prelude::*;

use super::kernel::{Entry, Run};
use crate::data::Ratings;
use crate::error::{Result, ensure};
use crate::rng::{self, Rng};

/// The entries of a ratings matrix cut into `g x g` blocks.
#[derive(Clone, Debug)]
pub struct Grid {
    /// Blocks per side.
    pub g: usize,
    /// New id of every original row.
    pub row_new: Vec<u32>,
    /// New id of every original column.
    pub col_new: Vec<u32>,
    /// First new row id of each row block (`g + 1` values).
    pub row_bounds: Vec<usize>,
    /// First new column id of each column block (`g + 1` values).
    pub col_bounds: Vec<usize>,
    /// Runs of all blocks, block after block (block id `rb * g + cb`).
    pub runs: Vec<Run>,
    /// `block_runs[b]..block_runs[b + 1]` are the runs of block `b`.
    pub block_runs: Vec<usize>,
    /// Position in `ent` of the first entry of each block (`g * g + 1` values).
    pub block_start: Vec<usize>,
    /// The entries, block after block.
    pub ent: Vec<Entry>,
    /// Number of entries of each row (by new id).
    pub row_counts: Vec<u32>,
    /// Number of entries of each column (by new id).
    pub col_counts: Vec<u32>,
}

fn bounds(len: usize, g: usize) -> Vec<usize> {
    (0..=g).map(|b| (b * len).div_ceil(g)).collect()
}

/// A random permutation of `0..n` as `u32`.
fn permutation(g: &mut Rng, n: usize) -> Vec<u32> {
    let mut p: Vec<u32> = (0..n as u32).collect();
    rng::shuffle(g, &mut p);
    p
}

impl Grid {
    /// Cut `data` into `g x g` blocks with row/column relabelling drawn from
    /// `seed`. Deterministic for a given `(data, g, seed)`, whatever the
    /// thread count.
    ///
    /// Two passes, both parallel: entry positions are bucketed by block
    /// (one counter per block and per fixed chunk of entries, so each chunk
    /// scatters into its own slots), then each block counting-sorts its own
    /// entries by row into its part of the entry array (an L2-sized region)
    /// and sorts every run by column. Extra memory while building: 4 bytes
    /// per entry plus a row counter per block row.
    pub fn build(data: &Ratings, g: usize, seed: u64) -> Result<Grid> {
        let (m, n) = data.shape();
        ensure!(g >= 1, "the grid needs at least one block per side");
        ensure!(g <= 4096, "a grid of {g} blocks per side is too large");
        let mut r = rng::stream(seed, 0x6E1D);
        let row_new = permutation(&mut r, m);
        let col_new = permutation(&mut r, n);
        let row_bounds = bounds(m, g);
        let col_bounds = bounds(n, g);
        let row_block: Vec<u32> = block_of(&row_bounds, m);
        let col_block: Vec<u32> = block_of(&col_bounds, n);
        let (rows, cols, vals) = (data.rows(), data.cols(), data.values());
        let nnz = data.len();
        let nb = g * g;
        let block_id = |k: usize| -> usize {
            let rb = row_block[row_new[rows[k] as usize] as usize] as usize;
            let cb = col_block[col_new[cols[k] as usize] as usize] as usize;
            rb * g + cb
        };
        // pass 1: entry positions bucketed by block, chunk by chunk
        const CHUNK: usize = 1 << 20;
        let nchunks = nnz.div_ceil(CHUNK);
        let chunk_counts: Vec<Vec<u32>> = (0..nchunks)
            .into_par_iter()
            .map(|c| {
                let mut cnt = vec![0u32; nb];
                for k in c * CHUNK..((c + 1) * CHUNK).min(nnz) {
                    cnt[block_id(k)] += 1;
                }
                cnt
            })
            .collect();
        let mut block_start = vec![0usize; nb + 1];
        for b in 0..nb {
            block_start[b + 1] = block_start[b] + chunk_counts.iter().map(|c| c[b] as usize).sum::<usize>();
        }
        // slot of (chunk, block): block start + counts of earlier chunks
        let mut offsets = vec![vec![0usize; nb]; nchunks];
        for b in 0..nb {
            let mut o = block_start[b];
            for c in 0..nchunks {
                offsets[c][b] = o;
                o += chunk_counts[c][b] as usize;
            }
        }
        drop(chunk_counts);
        let mut idx = vec![0u32; nnz];
        {
            let ptr = SyncPtr(idx.as_mut_ptr());
            offsets.into_par_iter().enumerate().for_each(|(c, mut off)| {
                let ptr = &ptr;
                for k in c * CHUNK..((c + 1) * CHUNK).min(nnz) {
                    let b = block_id(k);
                    // SAFETY: the slots of (chunk c, block b) are
                    // offsets[c][b] .. + count, disjoint across chunks and
                    // blocks, inside 0..nnz by construction.
                    unsafe { *ptr.0.add(off[b]) = k as u32 };
                    off[b] += 1;
                }
            });
        }
        // pass 2: every block sorts its entries by (row, column)
        let mut ent = vec![Entry::default(); nnz];
        let mut ent_blocks: Vec<&mut [Entry]> = Vec::with_capacity(nb);
        let mut rest: &mut [Entry] = &mut ent;
        for b in 0..nb {
            let (a, tail) = rest.split_at_mut(block_start[b + 1] - block_start[b]);
            ent_blocks.push(a);
            rest = tail;
        }
        let block_runs_vec: Vec<Vec<Run>> = ent_blocks
            .into_par_iter()
            .enumerate()
            .map(|(b, out)| {
                let (rb, cb) = (b / g, b % g);
                let (rlo, rhi) = (row_bounds[rb], row_bounds[rb + 1]);
                let clo = col_bounds[cb];
                let mine = &idx[block_start[b]..block_start[b + 1]];
                let mut cnt = vec![0u32; rhi - rlo + 1];
                for &k in mine {
                    cnt[row_new[rows[k as usize] as usize] as usize - rlo + 1] += 1;
                }
                let mut runs = Vec::new();
                for x in 0..rhi - rlo {
                    if cnt[x + 1] > 0 {
                        runs.push(Run { row: x as u32, end: (block_start[b] as u32) + cnt[x] + cnt[x + 1] });
                    }
                    cnt[x + 1] += cnt[x];
                }
                for &k in mine {
                    let k = k as usize;
                    let x = row_new[rows[k] as usize] as usize - rlo;
                    let p = cnt[x] as usize;
                    cnt[x] += 1;
                    out[p] = Entry { col: col_new[cols[k] as usize] - clo as u32, val: vals[k] };
                }
                let mut from = 0;
                for run in &runs {
                    let to = run.end as usize - block_start[b];
                    out[from..to].sort_unstable_by_key(|e| e.col);
                    from = to;
                }
                runs
            })
            .collect();
        drop(idx);
        let mut runs = Vec::with_capacity(block_runs_vec.iter().map(Vec::len).sum());
        let mut block_runs = Vec::with_capacity(nb + 1);
        for r in block_runs_vec {
            block_runs.push(runs.len());
            runs.extend(r);
        }
        block_runs.push(runs.len());
        let mut row_counts = vec![0u32; m];
        for b in 0..nb {
            let rlo = row_bounds[b / g];
            let mut prev = block_start[b] as u32;
            for run in &runs[block_runs[b]..block_runs[b + 1]] {
                row_counts[rlo + run.row as usize] += run.end - prev;
                prev = run.end;
            }
        }
        let mut col_counts = vec![0u32; n];
        for b in 0..nb {
            let clo = col_bounds[b % g];
            for e in &ent[block_start[b]..block_start[b + 1]] {
                col_counts[clo + e.col as usize] += 1;
            }
        }
        Ok(Grid {
            g,
            row_new,
            col_new,
            row_bounds,
            col_bounds,
            runs,
            block_runs,
            block_start,
            ent,
            row_counts,
            col_counts,
        })
    }

    /// Runs of block `b`.
    pub fn runs_of(&self, b: usize) -> &[Run] {
        &self.runs[self.block_runs[b]..self.block_runs[b + 1]]
    }

    /// Number of entries of block `b`.
    pub fn block_len(&self, b: usize) -> usize {
        self.block_start[b + 1] - self.block_start[b]
    }

    /// Heap bytes held by the grid.
    pub fn heap_bytes(&self) -> usize {
        self.ent.len() * 8 + self.runs.len() * 8 + (self.row_new.len() + self.col_new.len()) * 8
    }
}

struct SyncPtr(*mut u32);
// SAFETY: used only to write disjoint slots from parallel tasks.
unsafe impl Sync for SyncPtr {}

fn block_of(bounds: &[usize], len: usize) -> Vec<u32> {
    let mut out = vec![0u32; len];
    for b in 0..bounds.len() - 1 {
        for x in bounds[b]..bounds[b + 1] {
            out[x] = b as u32;
        }
    }
    out
}

/// The column-block assignment and stratum order of one epoch: stratum `t`
/// runs the blocks `(rb, perm[(rb + order[t]) % g])` for every row block
/// `rb`, which share no row block and no column block.
pub fn epoch_schedule(g: usize, seed: u64, epoch: u64) -> (Vec<u32>, Vec<u32>) {
    let mut r = rng::stream(seed ^ 0x5C4E_D01E, epoch);
    (permutation(&mut r, g), permutation(&mut r, g))
}
