//! `BatchingAtom`: rows go to the "database" in batches, by size or by age.
//!
//! 25 rows arrive quickly (two full batches of 10), then a straggler batch waits for its
//! oldest row to be 300 ms old; one batch fails and delivery goes on; `close` delivers the
//! rest and waits.
//!
//! ```sh
//! cargo run -p ephemeral --example atom_batching
//! ```

use ephemeral::atoms::BatchingAtom;
use std::time::{Duration, Instant};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let t0 = Instant::now();
    let writer = BatchingAtom::new(
        10,
        Duration::from_millis(300),
        move |rows: Vec<u32>| async move {
            tokio::time::sleep(Duration::from_millis(50)).await; // the INSERT
            let range = format!("{}..={}", rows[0], rows[rows.len() - 1]);
            if rows.contains(&13) {
                println!(
                    "{:>5} ms  batch {range}: insert failed",
                    t0.elapsed().as_millis()
                );
                return Err("deadlock detected");
            }
            println!(
                "{:>5} ms  batch {range}: {} rows inserted",
                t0.elapsed().as_millis(),
                rows.len()
            );
            Ok(())
        },
    );

    for row in 0..25 {
        writer.add(row).await.expect("open");
    }
    println!("{:>5} ms  25 rows added", t0.elapsed().as_millis());
    tokio::time::sleep(Duration::from_millis(500)).await; // rows 20..25 flush by age

    for row in 25..28 {
        writer.add(row).await.expect("open");
    }
    writer.flush().await;
    println!("{:>5} ms  flushed", t0.elapsed().as_millis());

    writer.add(28).await.expect("open");
    writer.close().await;
    println!(
        "{:>5} ms  closed; add now answers: {:?}",
        t0.elapsed().as_millis(),
        writer.add(29).await
    );
    println!("{:?}", writer.stats());
}
