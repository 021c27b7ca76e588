"""The motion room: camera-path maths (bpy-free) and the keyframes, focus and pivot on the photo's camera."""
