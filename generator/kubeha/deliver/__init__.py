"""Delivery: per-node documents as cloud-init user-data or Ignition, fitted to targets, seed ISOs, HTTP trees."""
