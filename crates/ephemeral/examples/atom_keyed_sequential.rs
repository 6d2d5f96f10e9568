//! `KeyedSequentialAtom`: one command at a time per user, users in parallel.
//!
//! Alice's and Bob's commands each run in order; the two users never wait for each other.
//! A per-key pending limit turns a flood from one user into `KeyOverloaded`.
//!
//! ```sh
//! cargo run -p ephemeral --example atom_keyed_sequential
//! ```

use ephemeral::atoms::KeyedSequentialAtom;
use ephemeral::{EnqueueError, Operation, Options};
use std::time::{Duration, Instant};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let t0 = Instant::now();
    let commands = KeyedSequentialAtom::with_options(
        |cmd: &(&'static str, u32)| cmd.0,
        move |(user, seq): (&'static str, u32), _op: Operation| async move {
            println!(
                "{:>5} ms  {user:<5} command {seq}",
                t0.elapsed().as_millis()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        },
        Options::default().max_concurrency(4).max_pending_per_key(3),
    );
    for seq in 0..3 {
        commands.enqueue(("alice", seq)).await.expect("room");
        commands.enqueue(("bob", seq)).await.expect("room");
    }
    // Bob's fourth command while three of his wait: refused, handed back.
    for seq in 3..6 {
        match commands.enqueue(("bob", seq)).await {
            Ok(_) => println!("bob command {seq} accepted"),
            Err(EnqueueError::KeyOverloaded(cmd)) => {
                println!("bob command {} refused: too many pending for bob", cmd.1);
            }
            Err(e) => println!("refused: {e}"),
        }
    }
    commands.drain().await;
    println!(
        "completed {} commands in {} ms (sequential per user, users in parallel)",
        commands.stats().completed,
        t0.elapsed().as_millis()
    );
}
