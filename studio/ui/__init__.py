"""The Gradio UI. Gradio is imported only here and in app.py; no business logic lives here."""
