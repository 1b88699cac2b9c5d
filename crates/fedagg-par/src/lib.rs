//! Work split over threads in contiguous runs, with the results in input order: the one pattern
//! behind every "the same bytes on any number of threads" path in fedagg (Paillier's and the
//! lattice mode's encryption, Paillier's decryption, SecAgg's reconstructions at unmasking).
//!
//! Each caller keeps what makes its result independent of the thread count, such as randomness
//! drawn per block in input order before the split. This crate only guarantees that run `i`'s
//! result is at position `i`, whatever ran where.
#![forbid(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

/// `f` over `items` in contiguous runs, one per thread, on up to `threads` threads. The calling
/// thread takes the first run. The runs' results come back in order. A panic in a run is
/// resumed on the caller. With one thread, or at most one item, `f` sees all of `items` at once
/// and nothing is spawned.
pub fn map_runs<T, R, F>(items: &[T], threads: usize, f: F) -> Vec<R>
where
    T: Sync,
    R: Send,
    F: Fn(&[T]) -> R + Sync,
{
    let threads = threads.clamp(1, items.len().max(1));
    if threads == 1 {
        return vec![f(items)];
    }
    let per = items.len().div_ceil(threads);
    let f = &f;
    let mut runs = items.chunks(per);
    let first = runs.next();
    std::thread::scope(|scope| {
        let handles: Vec<_> = runs.map(|run| scope.spawn(move || f(run))).collect();
        let mut out = Vec::with_capacity(handles.len() + 1);
        out.extend(first.map(f));
        out.extend(
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))),
        );
        out
    })
}

/// [`map_runs`] for runs that each return a `Vec` or fail: the vectors concatenated in order, or
/// the first error in input order (what one thread going through `items` would have returned).
pub fn try_concat_runs<T, R, E, F>(items: &[T], threads: usize, f: F) -> Result<Vec<R>, E>
where
    T: Sync,
    R: Send,
    E: Send,
    F: Fn(&[T]) -> Result<Vec<R>, E> + Sync,
{
    let mut all = Vec::new();
    for run in map_runs(items, threads, f) {
        all.extend(run?);
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_come_back_in_order_on_any_number_of_threads() {
        let items: Vec<u32> = (0..103).collect();
        let one: Vec<u32> = map_runs(&items, 1, |r| r.to_vec()).concat();
        assert_eq!(one, items);
        for threads in [2, 3, 8, 500] {
            let runs = map_runs(&items, threads, |r| r.to_vec());
            assert!(runs.len() <= threads);
            assert_eq!(runs.concat(), items, "{threads} threads");
        }
        assert_eq!(map_runs::<u32, usize, _>(&[], 4, <[u32]>::len), vec![0]);
    }

    #[test]
    fn the_first_error_in_input_order_wins() {
        let items: Vec<u32> = (0..40).collect();
        for threads in [1, 2, 4] {
            let got = try_concat_runs(&items, threads, |run| {
                run.iter()
                    .map(|&i| if i == 13 || i == 37 { Err(i) } else { Ok(i) })
                    .collect::<Result<Vec<_>, _>>()
            });
            assert_eq!(got, Err(13), "{threads} threads");
        }
        let fine = try_concat_runs(&items, 3, |run| Ok::<_, ()>(run.to_vec()));
        assert_eq!(fine, Ok(items));
    }
}
