# Read by the `flask` command (with python-dotenv): lets you type `flask run` instead of `flask --app ...`.
FLASK_APP={{ cookiecutter.package_name }}
