fn main() { println!("erlmcp {}", env!("CARGO_PKG_VERSION")); }
