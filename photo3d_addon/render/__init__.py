"""The render room: Eevee render settings and writing frames and videos."""
