# codedock/pybuntu-sci: the sandbox image with numpy, matplotlib and pandas, all
# from Debian's packages, for plots and tables. With a registry it starts from
# Debian's slim image and installs them; codedock image build passes BASE= a
# Debian root file system made offline with them already in (INSTALL= empty).
ARG BASE=debian:bookworm-slim
FROM ${BASE}
ARG INSTALL="python3 python3-numpy python3-matplotlib python3-pandas"

ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MPLBACKEND=Agg

RUN if [ -n "$INSTALL" ]; then \
        apt-get update && apt-get install -y --no-install-recommends $INSTALL \
        && rm -rf /var/lib/apt/lists/*; \
    fi

# matplotlib builds a cache of the system's fonts on first use, seconds of work
# that every run would repeat in its fresh, empty home. Build it here, once; a
# .pth hook points each run's matplotlib at a writable copy of it.
COPY codedock_mplcache.py /usr/lib/python3/dist-packages/codedock_mplcache.py
RUN echo "import codedock_mplcache" > /usr/lib/python3/dist-packages/codedock-mplcache.pth \
 && MPLCONFIGDIR=/usr/share/codedock/matplotlib python3 -c \
    "import matplotlib.font_manager, matplotlib.pyplot, numpy, pandas" \
 && ls /usr/share/codedock/matplotlib/fontlist-*.json \
 && mkdir -p /sandbox && chown 65534:65534 /sandbox

# The supervisor and its runtime, when codedock image build bakes them in (the
# folder is empty otherwise): root's, read-only to the sandbox, compiled here by
# this python3 into bytecode that Python checks against the source. As root,
# whatever user the base ends with.
USER 0:0
COPY codedock/ /opt/codedock/
RUN python3 -m compileall -q --invalidation-mode checked-hash /opt/codedock \
 && chmod -R u=rwX,go=rX /opt/codedock

WORKDIR /sandbox
USER 65534:65534
CMD ["python3"]
