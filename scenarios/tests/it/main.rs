//! Tests that hold the built-in scenarios to their expectations.
