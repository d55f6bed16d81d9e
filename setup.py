from setuptools import find_packages, setup

setup(
    name="msrplib",
    version="0.1.0",
    description="MSRP (RFC 4975, relays RFC 4976) for Twisted",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.9",
    # The plugin lives in twisted/plugins/ next to msrplib/, and Twisted finds plugins by
    # scanning the twisted/plugins directories of sys.path entries. Mapping the root
    # package to the project directory lets an editable install in pip's default mode
    # put the checkout itself on sys.path (as the compat mode does), so that twistd finds
    # the plugin there.
    package_dir={"": "."},
    packages=find_packages(include=["msrplib", "msrplib.*"]) + ["twisted.plugins"],
    package_data={"msrplib": ["py.typed"], "msrplib.relayserver": ["webdemo/*"]},
    install_requires=[
        "twisted>=22.10",
        "pyopenssl>=22.0",
        "service-identity>=21.1",
        "zope.interface>=5.0",
        "cryptography>=38.0",
        "defusedxml>=0.7",
        "prometheus-client>=0.17",
        "autobahn>=23.1",
    ],
    extras_require={
        "test": ["hypothesis>=6.0", "selenium>=4.10"],
        "docs": ["sphinx>=5.0"],
        "lint": ["ruff", "mypy"],
        "cli": ["tqdm"],
    },
    entry_points={"console_scripts": ["msrp = msrplib.cli:main"]},
    classifiers=[
        "Framework :: Twisted",
        "Programming Language :: Python :: 3",
        "Topic :: Communications :: Chat",
    ],
)
