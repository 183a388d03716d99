mkdir /tmp/headers
for d in {headers}; do [ -d /usr/include/$d ] && ln -s /usr/include/$d /tmp/headers/; done
cd /build
echo "# configure"
/src/configure --prefix={prefix} --with-headers=/tmp/headers {flags}
echo "# make"
make -j{jobs} user-defined-trusted-dirs={trusted}
echo "# make install"
make install install_root=/out sysconfdir={prefix}/etc user-defined-trusted-dirs={trusted}
