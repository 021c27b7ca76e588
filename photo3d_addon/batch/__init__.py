"""The batch room: headless conversion and rendering of many photos or packages, one exit-code table."""
