"""Offers: an order put to drivers with a time limit until one accepts; the driver socket."""
