"""MP4 downloads (docs/downloads.md): which rungs get one and queueing the job that makes them
(`requests`), and the job's step, remuxing a rung's stored segments and the audio into one
faststart MP4 without re-encoding (`make`). Beside `encoding`, which queues them when an encode
finishes; below `services` and `jobs`, which ask for them and run them."""
