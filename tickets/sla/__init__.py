"""SLA targets and clocks: business-time arithmetic, the settings' rules, each clock's transitions."""
