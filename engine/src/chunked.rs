//! [`ChunkedVec`]: a vector that grows by whole chunks of fixed capacity, for
//! arenas that grow with the state (a slot's bought lots).
//!
//! A `Vec` that doubles copies everything it holds into fresh memory each time,
//! and a large one comes and goes as its own mapping, so the kernel faults in
//! (and zeroes) every page again: most of the page faults of a busy engine
//! were the lot arenas growing. A chunked vector never moves an element; it
//! allocates one more chunk (small enough to come from the allocator's heap,
//! where freed chunks are reused) when the last is full.

use std::ops::{Index, IndexMut};

/// A vector of `T` in chunks of `N` elements: element `i` is at
/// `chunks[i / N][i % N]`. Pushing appends to the last chunk, or starts a new
/// one (of capacity `N`, so it never reallocates); clearing keeps the chunks'
/// memory for the elements pushed next.
#[derive(Debug, Clone)]
pub(crate) struct ChunkedVec<T, const N: usize> {
    /// Chunks `0..len.div_ceil(N)` are in use; the ones after them are empty,
    /// kept from before a [`clear`](Self::clear).
    chunks: Vec<Vec<T>>,
    /// Elements in use.
    len: usize,
}

impl<T, const N: usize> Default for ChunkedVec<T, N> {
    fn default() -> Self {
        ChunkedVec {
            chunks: Vec::new(),
            len: 0,
        }
    }
}

impl<T, const N: usize> ChunkedVec<T, N> {
    /// The number of elements.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Appends `value` at index [`len`](Self::len).
    #[inline]
    pub fn push(&mut self, value: T) {
        let chunk = self.len / N;
        if chunk == self.chunks.len() {
            self.chunks.push(Vec::with_capacity(N));
        }
        self.chunks[chunk].push(value);
        self.len += 1;
    }

    /// Removes every element, keeping the chunks' memory.
    pub fn clear(&mut self) {
        for chunk in &mut self.chunks {
            chunk.clear();
        }
        self.len = 0;
    }
}

impl<T, const N: usize> Index<usize> for ChunkedVec<T, N> {
    type Output = T;

    #[inline]
    fn index(&self, i: usize) -> &T {
        &self.chunks[i / N][i % N]
    }
}

impl<T, const N: usize> IndexMut<usize> for ChunkedVec<T, N> {
    #[inline]
    fn index_mut(&mut self, i: usize) -> &mut T {
        &mut self.chunks[i / N][i % N]
    }
}

#[cfg(test)]
mod tests {
    use super::ChunkedVec;
    use proptest::prelude::*;

    proptest! {
        /// Pushing, overwriting, reading and clearing in any order, a chunked
        /// vector answers as a `Vec` does.
        #[test]
        fn a_chunked_vec_behaves_as_a_vec(
            ops in prop::collection::vec((0..4u8, any::<u16>()), 1..300),
        ) {
            let (mut v, mut model) = (ChunkedVec::<u16, 4>::default(), Vec::new());
            for (op, x) in ops {
                match op {
                    0 | 1 => {
                        v.push(x);
                        model.push(x);
                    }
                    2 if !model.is_empty() => {
                        let i = x as usize % model.len();
                        v[i] = x;
                        model[i] = x;
                    }
                    _ if x % 16 == 0 => {
                        v.clear();
                        model.clear();
                    }
                    _ => {}
                }
                prop_assert_eq!(v.len(), model.len());
                for (i, want) in model.iter().enumerate() {
                    prop_assert_eq!(v[i], *want);
                }
            }
        }
    }
}
