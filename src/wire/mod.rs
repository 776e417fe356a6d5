//! Wire formats: typed views over byte slices and plain `Repr` structs with parse and emit.
