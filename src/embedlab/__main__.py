from embedlab.cli.main import main

main()
