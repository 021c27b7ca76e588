"""The scene room: the imported photo's object (PhotoScene), the scene builder, materials and placement."""
