"""Operations: health checks, alerts and their channels, retention, metrics, seeding (a surface)."""
