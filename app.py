"""Seed Studio web app: `python app.py` (also the Hugging Face Spaces entry point).

Honours GRADIO_SERVER_NAME / GRADIO_SERVER_PORT (Spaces sets them), STUDIO_HOME for the workspace and
SEED_STUDIO_MAX_UPLOAD_MB for the upload limit. No model is loaded at start-up.
"""

from studio.ui.shell import launch

if __name__ == "__main__":
    launch()
