"""The server's own API over REST (status, models, hub, system stats), for the dashboard
and scripts."""
