"""The bridge host: fronts a running Rust Spacebot over its HTTP API and event stream."""
