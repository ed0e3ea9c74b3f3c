"""The demo's commands (demo_setup, demo_jobs): an app of its own, so that ReArq's task
autoloading (``<app>.tasks``) never imports the example's tasks into other settings."""
