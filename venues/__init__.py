"""Venue connectors (FIX initiator to real or simulated venues) and the venue simulator."""
