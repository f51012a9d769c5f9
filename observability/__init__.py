"""What SRE runs the service by: Prometheus metrics, liveness and readiness, sweep bookkeeping."""
