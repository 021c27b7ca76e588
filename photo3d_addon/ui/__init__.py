"""The UI room: preferences, sidebar panels and their properties and operators."""
