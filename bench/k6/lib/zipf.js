// Zipf-distributed picks over a list, as popularity is in a catalog: rank k is drawn with
// probability ∝ 1/(k+1)^s. The same sampler as `outgrow seed` (crates/app/src/store/seed.rs)
// uses for the products of seeded orders, so the load favours the products the seeded
// history favours (the first ones created).

/** Draws ranks 0..n-1 by inverting the cumulative weights (binary search). */
export class Zipf {
  constructor(n, exponent) {
    this.cumulative = new Float64Array(n);
    let total = 0;
    for (let rank = 0; rank < n; rank += 1) {
      total += 1 / (rank + 1) ** exponent;
      this.cumulative[rank] = total;
    }
    this.total = total;
  }

  /** One rank. */
  sample() {
    const target = Math.random() * this.total;
    let low = 0;
    let high = this.cumulative.length - 1;
    while (low < high) {
      const middle = (low + high) >> 1;
      if (this.cumulative[middle] < target) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  /** `count` distinct ranks (count ≤ n). */
  distinct(count) {
    const picked = new Set();
    while (picked.size < Math.min(count, this.cumulative.length)) picked.add(this.sample());
    return [...picked];
  }
}
