from osaurus.cli.main import main

main()
