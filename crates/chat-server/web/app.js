// The web client (placeholder until the page lands).
