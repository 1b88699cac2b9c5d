//! Mask expansion: each mask is an AES-256-CTR keystream cut into elements of the session's
//! width, and [`apply_masks`] adds (or subtracts) a set of them to a vector in `Z_2^k`, on one
//! thread or, split by ranges of whole chunks, on several ([`apply_masks_on`], and
//! [`apply_masks_threaded`] as the work pays for). Re-exported from [`crate::crypto`].

use aes::cipher::array::Array;
use aes::cipher::BlockCipherEncrypt;
use fedagg_quant::Modulus;
use zeroize::{Zeroize, Zeroizing};

use super::{hkdf, threads, LABEL_PAIR_MASK, LABEL_SELF_MASK};
use crate::ClientId;

/// One mask stream: AES-256-CTR under a derived key, zero IV and a 128-bit big-endian counter
/// (each key is used for one stream). It is consumed in whole 16-byte blocks: a vector whose bytes
/// end mid-block discards the rest of that block, so build a new set of streams per vector (as
/// every caller does).
///
/// The counter blocks are written straight into the buffer being filled and encrypted there in
/// place, as many at a time as `aes` takes (64 with VAES and AVX-512, 8 with AES-NI): no
/// temporary, no zeroing, no XOR. (The `ctr` crate builds each batch of counters in a temporary,
/// one byte swap per block: with `aes` 0.9's VAES it reached 3.2 GB/s where this reaches 5.)
pub struct MaskStream {
    /// Zeroized on drop (`aes`'s `zeroize` feature).
    cipher: aes::Aes256,
    /// The next block's counter (not secret).
    counter: u128,
    subtract: bool,
}

impl MaskStream {
    /// The self-mask stream of `client` from its seed `b`.
    pub fn self_mask(
        seed: &[u8; 32],
        session: &[u8; 32],
        client: ClientId,
        subtract: bool,
    ) -> Self {
        let key = hkdf(seed, session, &[LABEL_SELF_MASK, &client.0.to_le_bytes()]);
        Self::from_key(&key, subtract)
    }

    /// The pairwise stream shared by `a` and `b` (order-free) from their agreed secret.
    pub fn pair_mask(
        agreed: &[u8; 32],
        session: &[u8; 32],
        a: ClientId,
        b: ClientId,
        subtract: bool,
    ) -> Self {
        let (lo, hi) = if a < b { (a, b) } else { (b, a) };
        let key = hkdf(
            agreed,
            session,
            &[LABEL_PAIR_MASK, &lo.0.to_le_bytes(), &hi.0.to_le_bytes()],
        );
        Self::from_key(&key, subtract)
    }

    /// A stream under a raw 256-bit key (benchmarks and the two constructors above).
    pub fn from_key(key: &[u8; 32], subtract: bool) -> Self {
        MaskStream {
            // `aes`'s own `KeyInit`: the `aead` one in scope is the older `cipher`'s.
            cipher: aes::cipher::KeyInit::new(key.into()),
            counter: 0,
            subtract,
        }
    }

    /// Write the next `out.len()` keystream bytes into `out`: the counter blocks, encrypted in
    /// place; a final partial block through a zeroized temporary.
    fn fill(&mut self, out: &mut [u8]) {
        let (blocks, tail) = Array::slice_as_chunks_mut(out);
        // 16 KiB at a time, so the counters are still in cache when they are encrypted (masking
        // fills at most 8 KiB at once; a whole 40 MB keystream in two passes ran at half speed).
        for batch in blocks.chunks_mut(1024) {
            self.write_counters(batch);
            self.cipher.encrypt_blocks(batch);
        }
        if !tail.is_empty() {
            let mut last = aes::Block::default();
            self.write_counters(std::slice::from_mut(&mut last));
            self.cipher.encrypt_block(&mut last);
            tail.copy_from_slice(&last[..tail.len()]);
            last.as_mut_slice().zeroize();
        }
    }

    /// The same stream `blocks` blocks further on, for a thread masking a later range of the
    /// vector. The copy of the key schedule is zeroized on drop like the original; `MaskStream`
    /// itself has no `Clone`.
    fn fork(&self, blocks: u128) -> MaskStream {
        MaskStream {
            cipher: self.cipher.clone(),
            counter: self.counter.wrapping_add(blocks),
            subtract: self.subtract,
        }
    }

    /// Write the next `blocks.len()` counter blocks (128-bit big-endian) and advance the
    /// counter. Blocks are written in runs that differ only in the counter's last byte: each is
    /// the run's base with that byte ORed in, two 8-byte stores. A 128-bit addition and byte
    /// swap per block took twice as long, a fifth of the keystream's time.
    fn write_counters(&mut self, blocks: &mut [aes::Block]) {
        // Where the block's last byte sits in the native integer of its last 8 bytes.
        const LAST_BYTE: u32 = if cfg!(target_endian = "little") {
            56
        } else {
            0
        };
        let mut rest = blocks;
        while !rest.is_empty() {
            let first = (self.counter & 0xff) as usize;
            let (run, later) = rest.split_at_mut(rest.len().min(256 - first));
            let base = self.counter & !0xff;
            let high = ((base >> 64) as u64).to_be_bytes();
            let low = u64::from_ne_bytes((base as u64).to_be_bytes());
            for (i, block) in run.iter_mut().enumerate() {
                block[..8].copy_from_slice(&high);
                let last = ((first + i) as u64) << LAST_BYTE;
                block[8..].copy_from_slice(&(low | last).to_ne_bytes());
            }
            self.counter = self.counter.wrapping_add(run.len() as u128);
            rest = later;
        }
    }
}

/// Whether this binary was built with VAES and AVX-512 enabled (`RUSTFLAGS="-C target-cpu=native"`
/// on such a CPU), and whether the CPU it runs on has them. `aes` picks its VAES backend at run
/// time either way, but runs it at full speed only when built with them: about twice the keystream
/// a second on the project's machines (`docs/secagg.md`, "Built for this CPU").
pub fn vaes() -> (bool, bool) {
    let built = cfg!(all(target_feature = "vaes", target_feature = "avx512f"));
    #[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
    let cpu = std::arch::is_x86_feature_detected!("vaes")
        && std::arch::is_x86_feature_detected!("avx512f");
    #[cfg(not(any(target_arch = "x86_64", target_arch = "x86")))]
    let cpu = false;
    (built, cpu)
}

/// Keystream bytes a thread must have for a split to pay. Starting a thread costs 0.1 to 0.2 ms on
/// these machines, the time of 0.5 to 1 MB of keystream: with less than 4 MiB a thread, two threads
/// were slower than one or barely faster (`docs/secagg.md`, "Every core").
const MIN_KEYSTREAM_PER_THREAD: usize = 4 << 20;

/// The threads worth starting to apply `streams` masks of `len` elements: at most `threads`, and
/// one per `MIN_KEYSTREAM_PER_THREAD` of keystream at least (so one for a small vector).
pub fn threads_for(len: usize, streams: usize, modulus: Modulus, threads: usize) -> usize {
    let keystream = len
        .saturating_mul(streams)
        .saturating_mul(modulus.bytes_per_element());
    threads.min(keystream / MIN_KEYSTREAM_PER_THREAD).max(1)
}

/// [`apply_masks_on`] over the threads [`set_threads`](super::set_threads) allows, as many as the
/// work pays for ([`threads_for`]): what the server's unmasking and a client's masking use.
pub fn apply_masks_threaded(acc: &mut [u64], streams: &mut [MaskStream], modulus: Modulus) {
    let threads = threads_for(acc.len(), streams.len(), modulus, threads());
    apply_masks_on(acc, streams, modulus, threads)
}

/// [`apply_masks`] on up to `threads` threads: the vector is split into ranges of whole chunks,
/// and each thread masks its range with every stream started at that range's first block (CTR
/// seeks for free). Each element takes the same keystream bytes as in `apply_masks`, so the result
/// is the same bit for bit, and the streams end advanced past the whole vector, as there. No
/// thread needs an accumulator of its own, and a vector of one chunk stays on one thread.
pub fn apply_masks_on(
    acc: &mut [u64],
    streams: &mut [MaskStream],
    modulus: Modulus,
    threads: usize,
) {
    let chunks = acc.len().div_ceil(CHUNK);
    let threads = threads.min(chunks);
    if threads <= 1 || streams.is_empty() {
        return apply_masks(acc, streams, modulus);
    }
    let bytes = modulus.bytes_per_element();
    // A whole number of chunks per range: CHUNK elements are a whole number of blocks at every
    // width, so each range starts on a block boundary and only the vector's end is mid-block.
    let per = chunks.div_ceil(threads) * CHUNK;
    let streams_at = |range: usize| -> Vec<MaskStream> {
        let first_block = (range * per * bytes / 16) as u128;
        streams.iter().map(|s| s.fork(first_block)).collect()
    };
    std::thread::scope(|scope| {
        let mut ranges = acc.chunks_mut(per).enumerate();
        let first = ranges.next();
        for (i, range) in ranges {
            let mut forks = streams_at(i);
            scope.spawn(move || apply_masks(range, &mut forks, modulus));
        }
        if let Some((_, range)) = first {
            apply_masks(range, &mut streams_at(0), modulus);
        }
    });
    let used = (acc.len() * bytes).div_ceil(16) as u128;
    for s in streams.iter_mut() {
        s.counter = s.counter.wrapping_add(used);
    }
}

/// Elements per chunk: the accumulator chunk (8 KiB) and one keystream buffer stay in L1 while
/// every stream is applied to it.
const CHUNK: usize = 1024;

/// Add (or subtract) every stream's mask to `acc` in `Z_2^k`. Streams are advanced in place, so
/// applying a set twice gives fresh (different) masks: build a new set per vector.
///
/// Each element takes `ceil(k/8)` little-endian keystream bytes truncated to `k` bits, which is
/// uniform over `Z_2^k` because `2^k` divides `2^(8 ceil(k/8))`.
pub fn apply_masks(acc: &mut [u64], streams: &mut [MaskStream], modulus: Modulus) {
    match modulus.bytes_per_element() {
        1 => apply_width::<1, u32>(acc, streams, modulus),
        2 => apply_width::<2, u32>(acc, streams, modulus),
        3 => apply_width::<3, u32>(acc, streams, modulus),
        4 => apply_width::<4, u32>(acc, streams, modulus),
        5 => apply_width::<5, u64>(acc, streams, modulus),
        6 => apply_width::<6, u64>(acc, streams, modulus),
        7 => apply_width::<7, u64>(acc, streams, modulus),
        _ => apply_width::<8, u64>(acc, streams, modulus),
    }
}

/// The integers a chunk's masks are summed in before they join the accumulator: `u32` for
/// elements of up to 4 bytes (`2^k` divides `2^32`, so the sum modulo `2^32` cut to `k` bits is
/// the sum modulo `2^k`), which fits twice as many lanes in a vector instruction as `u64`.
trait Lane: Copy + Default + zeroize::DefaultIsZeroes {
    /// `x` modulo the lane's width.
    fn cut(x: u64) -> Self;
    fn add(self, other: Self) -> Self;
    fn sub(self, other: Self) -> Self;
    fn widen(self) -> u64;
}

/// `Lane` for an unsigned integer type: wrapping arithmetic, truncation from `u64`.
macro_rules! lane {
    ($t:ty) => {
        impl Lane for $t {
            #[inline(always)]
            fn cut(x: u64) -> Self {
                x as $t
            }
            #[inline(always)]
            fn add(self, other: Self) -> Self {
                self.wrapping_add(other)
            }
            #[inline(always)]
            fn sub(self, other: Self) -> Self {
                self.wrapping_sub(other)
            }
            #[inline(always)]
            fn widen(self) -> u64 {
                u64::from(self)
            }
        }
    };
}

lane!(u32);
lane!(u64);

fn apply_width<const B: usize, L: Lane>(
    acc: &mut [u64],
    streams: &mut [MaskStream],
    modulus: Modulus,
) {
    let mask = modulus.mask();
    // Eight bytes more than a chunk's keystream: room for a whole word at the last element.
    let mut buf = Zeroizing::new(vec![0u8; CHUNK * B + 8]);
    // The chunk's sum of masks: as secret as the keystream.
    let mut sum = Zeroizing::new(vec![L::default(); CHUNK]);
    for chunk in acc.chunks_mut(CHUNK) {
        let part = &mut sum[..chunk.len()];
        part.fill(L::default());
        for s in streams.iter_mut() {
            s.fill(&mut buf[..chunk.len() * B]);
            if matches!(B, 1 | 2 | 4 | 8) {
                let words = buf.chunks_exact(B).map(|w| L::cut(load::<B>(w)));
                accumulate(part, words, s.subtract);
            } else {
                // 3, 5, 6 or 7 bytes: each element is read as the whole 8-byte word at its first
                // byte. The bytes past the element (the next one's, or stale ones after the last)
                // land at bit 8B and above, beyond the k bits kept; the lanes' sums carry only
                // upwards, so those bits never reach the k kept ones and fall away at the mask
                // below. Copying B bytes per element took most of masking's time at 5 bytes.
                let words = buf.windows(8).step_by(B).map(|w| L::cut(load::<8>(w)));
                accumulate(part, words, s.subtract);
            }
        }
        for (a, m) in chunk.iter_mut().zip(part.iter()) {
            *a = a.wrapping_add(m.widen()) & mask;
        }
    }
}

/// Add (or subtract) one stream's words to a chunk's sum.
#[inline(always)]
fn accumulate<L: Lane>(part: &mut [L], words: impl Iterator<Item = L>, subtract: bool) {
    if subtract {
        for (a, m) in part.iter_mut().zip(words) {
            *a = a.sub(m);
        }
    } else {
        for (a, m) in part.iter_mut().zip(words) {
            *a = a.add(m);
        }
    }
}

/// Little-endian load of a `B`-byte word; the common widths get a single load the compiler can
/// vectorise.
#[inline(always)]
pub(crate) fn load<const B: usize>(w: &[u8]) -> u64 {
    match B {
        8 => u64::from_le_bytes(w.try_into().unwrap_or([0; 8])),
        4 => u64::from(u32::from_le_bytes(w.try_into().unwrap_or([0; 4]))),
        2 => u64::from(u16::from_le_bytes(w.try_into().unwrap_or([0; 2]))),
        _ => {
            let mut le = [0u8; 8];
            le[..B].copy_from_slice(w);
            u64::from_le_bytes(le)
        }
    }
}

/// Raw keystream generation into `out`, for the benchmark that states masking as a ratio to it.
pub fn keystream(key: &[u8; 32], out: &mut [u8]) {
    MaskStream::from_key(key, false).fill(out);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use proptest::prelude::*;

    /// One thread below 4 MiB of keystream a thread, then one per 4 MiB up to the setting.
    #[test]
    fn threads_start_only_for_enough_keystream() {
        let m32 = Modulus::new(32).unwrap();
        let m64 = Modulus::new(64).unwrap();
        assert_eq!(threads_for(10_000, 65, m32, 8), 1);
        assert_eq!(threads_for(1 << 20, 2, m32, 8), 2);
        assert_eq!(threads_for((1 << 20) - 1, 2, m32, 8), 1);
        assert_eq!(threads_for(1 << 20, 2, m64, 8), 4);
        assert_eq!(threads_for(1_000_000, 100, m32, 2), 2);
        assert_eq!(threads_for(1_000_000, 100, m32, 1), 1);
        assert_eq!(threads_for(1_000_000, 0, m32, 8), 1);
        assert_eq!(threads_for(usize::MAX, usize::MAX, m64, 3), 3);
    }

    proptest! {
        /// The counter runs are the 128-bit big-endian counters one by one, across a run's last
        /// byte, the 64-bit halves' boundary and the counter's wrap, in successive calls.
        #[test]
        fn counter_blocks_are_the_big_endian_counters(
            start in prop_oneof![
                any::<u128>(),
                (0u128..600),
                (0u128..600).prop_map(|d| (1u128 << 64) - 300 + d),
                (0u128..600).prop_map(|d| u128::MAX - 599 + d),
            ],
            first in 0usize..700,
            second in 0usize..300,
        ) {
            let mut stream = MaskStream::from_key(&[3; 32], false);
            stream.counter = start;
            let mut blocks = vec![aes::Block::default(); first + second];
            let (a, b) = blocks.split_at_mut(first);
            stream.write_counters(a);
            stream.write_counters(b);
            for (i, block) in blocks.iter().enumerate() {
                let expected = start.wrapping_add(i as u128).to_be_bytes();
                prop_assert_eq!(block.as_slice(), &expected[..], "block {}", i);
            }
            prop_assert_eq!(stream.counter, start.wrapping_add((first + second) as u128));
        }
    }
}
