"""Team reconciler Lambda: converges the gateway's teams and team keys on the desired state."""
