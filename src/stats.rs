//! Counters, drop reasons and latency histograms.
