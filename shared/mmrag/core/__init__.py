"""Domain records, ports and services: the part that does not know which adapters it runs on."""
