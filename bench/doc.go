// Package bench is onsale's built-in benchmark: it simulates an on-sale over
// real HTTP and reports throughput, latency and fairness, and checks the end
// state.
package bench
