//! Stress runs: free-running real actors, many runs, reproduction rates with Wilson intervals.
