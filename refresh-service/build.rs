//! Rebuilds the embedded migrations when an SQL file changes.

fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
