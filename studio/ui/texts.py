"""Every label, help text and plain-language sentence the UI shows, in one place (easy to review and
to translate later)."""

TITLE = "Seed Studio"
TAGLINE = ("Describe your task, upload 50–100 gold examples, and turn them into a fine-tuned model you "
           "can check — all in the browser.")
FIRST_STEP = ("**Start here:** create a project (or pick one), say precisely what the model should do, "
              "then upload your seed examples.")

PROJECT_PICK = "Project"
PROJECT_PICK_HELP = "Everything you make belongs to one project. Your choice is remembered in this browser."
PROJECT_NEW_NAME = "New project name"
PROJECT_NEW_PLACEHOLDER = "e.g. Support email replies"
PROJECT_CREATE = "Create project"
PROJECT_RENAME_TO = "Rename current project to"
PROJECT_RENAME = "Rename"
NO_PROJECT = "No project yet: type a name above and press **Create project**."

TASK_TAB = "Task & Seeds"
TASK_HEADER = "### 1 · Describe the task"
TASK_LABEL = "What should the fine-tuned model do?"
TASK_PLACEHOLDER = ("e.g. Write short, friendly replies to customer emails about late deliveries, "
                    "in at most 5 sentences, offering a concrete next step.")
TASK_HELP = "Be specific: what goes in, what should come out, for whom. Saved when you leave the box."
BASE_MODEL = "Base model (the model you fine-tune)"
BASE_MODEL_HELP = "The embedded SmolLM2-135M works offline; or type a local folder or a Hub id (owner/name)."
TEACHER = "Teacher model (writes new examples from your seeds)"
TEACHER_HELP = "Used by Generate. The embedded SmolLM2 works offline; a bigger model writes better data."

SEEDS_HEADER = "### 2 · Upload seed examples"
SEEDS_HELP = ("Gold-standard examples written by people: CSV, TSV, JSON, JSONL or Parquet. Recognised "
              "layouts: instruction/input/output, prompt/completion, chat `messages`, text + label, "
              "tokens + tags (NER).")
UPLOAD_LABEL = "Seed file"
EXAMPLE_BUTTON = "No seeds yet? Try the team's example seeds (customer-support replies)"
HUB_ACCORDION = "…or import a dataset from the Hugging Face Hub"
HUB_ID = "Hub dataset id"
HUB_ID_PLACEHOLDER = "owner/name, e.g. tatsu-lab/alpaca"
HUB_SPLIT = "Split"
HUB_LOAD = "Load from the Hub"
MAPPING_ACCORDION = "Format and column mapping"
FORMAT_LABEL = "Seed format"
FORMAT_HELP = "Detected from the column names; change it if the guess is wrong."
MAPPING_FIELD_HELP = "Which column of your file holds this field."
NOT_MAPPED = "(none)"
PREVIEW_LABEL = "Preview (first 200 rows)"
PROBLEMS_LABEL = "Problems found (row, column, what is wrong)"
IMPORT_BUTTON = "Import seeds"
NOTHING_UPLOADED = "Upload a file to see its rows checked here. Nothing is saved until you press **Import**."

LIBRARY_HEADER = "### 3 · Your seeds"
LIBRARY_HELP = "Click a row to edit or delete that seed. Edits are checked like an import."
EDITOR_ACCORDION = "Edit the selected seed"
EDIT_SAVE = "Save changes"
EDIT_DELETE = "Delete this seed"
EDIT_NONE = "Click a seed in the table above to edit it."

MODELS_ACCORDION = "Models available here"
MODELS_HELP = ("What the studio can use, and whether it is ready. Nothing is loaded until a step needs it: "
               "the embedded chat model is converted once (about 20 s) and cached.")
MODELS_REFRESH = "Refresh"
