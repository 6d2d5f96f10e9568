//! `FixedWorkAtom`: a queue with one knob, the concurrency cap.
//!
//! Eight "image resizes" of 300 ms each, at most three at once: watch them start in waves.
//!
//! ```sh
//! cargo run -p ephemeral --example atom_fixed
//! ```

use ephemeral::atoms::FixedWorkAtom;
use ephemeral::Operation;
use std::time::{Duration, Instant};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let t0 = Instant::now();
    let resizer = FixedWorkAtom::new(
        move |image: u32, op: Operation| async move {
            println!(
                "{:>5} ms  start  image {image} ({})",
                t0.elapsed().as_millis(),
                op.id()
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
            println!("{:>5} ms  done   image {image}", t0.elapsed().as_millis());
        },
        3,
    );
    for image in 0..8 {
        resizer.enqueue(image).await.expect("open");
    }
    resizer.drain().await;
    let stats = resizer.stats();
    println!(
        "completed {} of {} in {} ms with at most 3 at once",
        stats.completed,
        stats.enqueued,
        t0.elapsed().as_millis()
    );
}
